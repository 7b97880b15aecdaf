// Gapless playback: clips are scheduled back to back on one AudioContext timeline, each at its
// own sample rate (the context resamples), so there is neither a gap nor an overlap between
// sentences. `stop()` silences everything at once and says how much of the turn was heard.

import { decodeWav } from "./wav.js";

const LEAD_S = 0.05; // the first clip starts this far ahead, so it is never cut at its head

export class Player {
  constructor() {
    this.ctx = null;
    this.clips = []; // {turn, source, start, duration}
    this.end = 0; // where the next clip goes on the timeline
    this.heard = new Map(); // turn -> seconds of its clips that played to their end
    this.onIdle = () => {};
    this.stats = { scheduled: 0, ended: 0, stopped: 0 };
  }

  // Call from a user gesture (click, key), where browsers allow audio to start.
  unlock() {
    if (!this.ctx) this.ctx = new AudioContext();
    if (this.ctx.state === "suspended") this.ctx.resume();
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
    source.connect(this.ctx.destination);
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
    this.onIdle();
    return Math.round(played * 1000);
  }
}
