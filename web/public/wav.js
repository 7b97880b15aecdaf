// Decode one `response` clip: a base64 WAV (PCM 16-bit) into float samples at its own rate.

export function decodeWav(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a WAV file");
  let rate = 0;
  let channels = 1;
  let bits = 16;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "fmt ") {
      channels = view.getUint16(body + 2, true);
      rate = view.getUint32(body + 4, true);
      bits = view.getUint16(body + 14, true);
    } else if (id === "data") {
      if (bits !== 16 || !rate) throw new Error(`unsupported WAV: ${bits}-bit`);
      const frames = Math.floor(Math.min(size, bytes.length - body) / (2 * channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) {
        // The first channel; the server sends mono.
        samples[i] = view.getInt16(body + i * 2 * channels, true) / 32768;
      }
      return { rate, samples };
    }
    at = body + size + (size % 2);
  }
  throw new Error("WAV file without data");
}

// Float samples in [-1, 1] as base64 PCM 16-bit little-endian, for `speaking_part`.
export function pcmBase64(frames) {
  const total = frames.reduce((n, f) => n + f.length, 0);
  const out = new DataView(new ArrayBuffer(total * 2));
  let i = 0;
  for (const frame of frames) {
    for (const x of frame) {
      const v = Math.max(-1, Math.min(1, x));
      out.setInt16(2 * i++, v < 0 ? v * 32768 : v * 32767, true);
    }
  }
  let binary = "";
  const bytes = new Uint8Array(out.buffer);
  for (let at = 0; at < bytes.length; at += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  }
  return btoa(binary);
}
