// Gapless playback: clips are scheduled back to back on one AudioContext timeline, each at its
// own sample rate (the context resamples), so there is neither a gap nor an overlap between
// sentences. `stop()` silences everything at once and says how much of the turn was heard.
// `duck()` turns the bot down while the user may be starting to talk; `unduck()` back up.

import { decodeWav } from "./wav.js";

const LEAD_S = 0.05; // the first clip starts this far ahead, so it is never cut at its head
const DUCK_LEVEL = 0.2; // the bot's volume while the user may be talking over it
const DUCK_S = 0.03; // time constant of the volume change: quick, without a click

export class Player {
  constructor() {
    this.ctx = null;
    this.clips = []; // {turn, source, start, duration}
    this.end = 0; // where the next clip goes on the timeline
    this.heard = new Map(); // turn -> seconds of its clips that played to their end
    this.onIdle = () => {};
    // gainAtStop: the volume the last `stop()` cut the bot off at (1: not turned down first).
    this.stats = { scheduled: 0, ended: 0, stopped: 0, ducked: 0, gainAtStop: null };
    this.gain = null; // every clip plays through it
    this.level = 1; // the volume the gain is set to reach
  }

  // Call from a user gesture (click, key), where browsers allow audio to start.
  unlock() {
    if (!this.ctx) {
      this.ctx = new AudioContext();
      this.gain = this.ctx.createGain();
      this.gain.connect(this.ctx.destination);
    }
    if (this.ctx.state === "suspended") this.ctx.resume();
  }

  get ducked() {
    return this.level < 1;
  }

  // Turn the bot down at once while it plays; the next clips play down too, until `unduck()`.
  duck() {
    if (!this.playing || this.ducked) return;
    this.setLevel(DUCK_LEVEL);
    this.stats.ducked++;
  }

  unduck() {
    if (this.ducked) this.setLevel(1);
  }

  setLevel(level) {
    this.level = level;
    this.gain.gain.setTargetAtTime(level, this.ctx.currentTime, DUCK_S);
  }

  get playing() {
    return this.clips.length > 0;
  }

  enqueue(turn, base64) {
    this.unlock();
    const { rate, samples } = decodeWav(base64);
    const buffer = this.ctx.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.gain);
    const start = Math.max(this.end, this.ctx.currentTime + LEAD_S);
    const clip = { turn, source, start, duration: buffer.duration };
    source.onended = () => {
      const i = this.clips.indexOf(clip);
      if (i < 0) return; // stopped
      this.clips.splice(i, 1);
      this.heard.set(turn, (this.heard.get(turn) || 0) + clip.duration);
      this.stats.ended++;
      if (!this.clips.length) this.onIdle();
    };
    source.start(start);
    this.end = start + buffer.duration;
    this.clips.push(clip);
    this.stats.scheduled++;
    return clip;
  }

  // Stop at once. Returns the milliseconds of `turn`'s audio that were played.
  stop(turn) {
    const now = this.ctx ? this.ctx.currentTime : 0;
    let played = this.heard.get(turn) || 0;
    for (const clip of this.clips) {
      if (clip.turn === turn) played += Math.max(0, Math.min(now - clip.start, clip.duration));
      clip.source.onended = null;
      clip.source.stop();
      this.stats.stopped++;
    }
    this.clips = [];
    this.end = 0;
    if (this.gain) this.stats.gainAtStop = this.gain.gain.value;
    this.unduck(); // the next turn is heard at full volume
    this.onIdle();
    return Math.round(played * 1000);
  }
}
