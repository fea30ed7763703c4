// Screen capture: scaled JPEG stills at a low rate, sent only when the screen changed.
//
// Every tick the current video frame is drawn into a small grayscale thumbnail and compared
// with the thumbnail of the last frame a tick sent. Ticks come twice a frame period (1/fps),
// so a change is seen within half a period; a frame still goes out at most once a period.
// A frame goes out when enough of the thumbnail changed, or when the last frame sent is
// older than the keyframe interval:
// `keyframeS` while someone speaks (`speaking`: the user or the model), the longer
// `idleKeyframeS` while nobody does, since then no turn looks at the screen and the
// next question sends a fresh frame anyway. A `changeThreshold` of 0 sends every tick;
// one above 1 sends keyframes only.
// refresh() sends one at once, whatever changed, unless the last frame sent is less than
// a second old; it leaves the ticks' comparison as it was. While `paused` nothing is
// captured or sent at all (ticks and refresh() do nothing); resume() sends a frame at once.

const THUMB_WIDTH = 96;
const PIXEL_DELTA = 12; // gray levels (0..255) a thumbnail pixel must move to count as changed
const REFRESH_AFTER_MS = 1000; // refresh() sends only if the last frame sent is older
const TICKS_PER_FRAME = 2; // change detection runs this many times a frame period
// A tick may send once this share of a period has passed since the last frame: timer
// jitter never pushes a frame to the tick after.
const MIN_GAP_OF_PERIOD = 0.75;

export const FPS_RANGE = Object.freeze({ min: 0.2, max: 2 });

export class ScreenCapture extends EventTarget {
  #stream = null;
  #video = null;
  #canvas = document.createElement("canvas");
  #thumb = document.createElement("canvas");
  #lastThumb = null;
  #lastSentAt = -Infinity;
  #lastCountedAt = -Infinity; // the last tick counted as a period: sent or skipped
  #timer = null;
  #inFlight = null; // the capture in progress (a tick or a refresh), if any
  #paused = false;
  #fps;

  constructor({ fps = 1, maxSide = 1024, quality = 0.8, keyframeS = 10, idleKeyframeS = 60, changeThreshold = 0.01 } = {}) {
    super();
    this.#fps = clampFps(fps);
    this.maxSide = maxSide;
    this.quality = quality;
    this.keyframeS = keyframeS;
    this.idleKeyframeS = idleKeyframeS;
    this.changeThreshold = changeThreshold;
    this.speaking = false; // someone speaks: keyframes every keyframeS, else idleKeyframeS
    // Counters and the last 600 ticks ({at, sent, held, keyframe, changed, speaking}): what the stats
    // panel shows, and the page's diagnostic record (read in the console and by the
    // end-to-end tests through window.sharePage.screen).
    this.sent = 0;
    this.skipped = 0; // frame periods that sent nothing: the screen had not changed
    this.refreshes = 0; // frames sent by refresh(), counted in `sent` too
    this.ticks = [];
  }

  get tracks() {
    return this.#stream?.getTracks() ?? [];
  }

  get active() {
    return this.#stream !== null;
  }

  /** performance.now() when the last frame sent was captured (-Infinity: none yet). */
  get lastSentAt() {
    return this.#lastSentAt;
  }

  get fps() {
    return this.#fps;
  }

  /** Whether sharing is paused: no frame is captured or sent. */
  get paused() {
    return this.#paused;
  }

  /** Pause sharing: ticks and refresh() send nothing until resume(). */
  pause() {
    this.#paused = true;
  }

  /**
   * Resume sharing and send a fresh frame at once, whatever its age or change. Resolves
   * to true once that frame was emitted.
   */
  resume() {
    this.#paused = false;
    return this.refresh({ force: true });
  }

  set fps(value) {
    this.#fps = clampFps(value);
    if (this.#timer !== null) this.#schedule();
  }

  async start() {
    this.#stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 5, max: 15 } },
      audio: false,
    });
    const [track] = this.#stream.getVideoTracks();
    track.addEventListener("ended", () => {
      this.stop();
      this.dispatchEvent(new Event("ended"));
    });
    this.#video = document.createElement("video");
    this.#video.muted = true;
    this.#video.playsInline = true;
    this.#video.srcObject = this.#stream;
    await this.#video.play();
    this.#schedule();
  }

  stop() {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#stream?.getTracks().forEach((track) => track.stop());
    this.#stream = null;
    this.#video = null;
    this.#lastThumb = null;
  }

  #schedule() {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#tick(), 1000 / this.#fps / TICKS_PER_FRAME);
  }

  /**
   * Send a frame now, bypassing change detection, unless the last frame sent is less
   * than a second old. Resolves to true once the frame was emitted, else to false (also
   * when nothing is shared, sharing is paused or the capture failed). With `force` the
   * age does not matter.
   */
  async refresh({ force = false } = {}) {
    // A tick in flight may send a frame itself: wait for it, then look at the age.
    while (this.#inFlight) await this.#inFlight.catch(() => {});
    const video = this.#video;
    const now = performance.now();
    if (!video?.videoWidth || this.#paused) return false;
    if (!force && now - this.#lastSentAt < REFRESH_AFTER_MS) return false;
    const capture = this.#exclusive(() => this.#send(video, now));
    const sent = await capture.catch(() => false);
    if (sent) this.refreshes += 1;
    return sent;
  }

  #tick() {
    const video = this.#video;
    if (!video || this.#inFlight || !video.videoWidth || this.#paused) return;
    this.#exclusive(async () => {
      const now = performance.now();
      const thumb = this.#thumbnail(video);
      const changed = this.#lastThumb ? changedFraction(this.#lastThumb, thumb) : 1;
      const speaking = this.speaking;
      const interval = speaking ? this.keyframeS : this.idleKeyframeS;
      const age = now - this.#lastSentAt;
      const keyframe = age >= interval * 1000;
      const due = changed >= this.changeThreshold || keyframe;
      const held = due && age < MIN_GAP_OF_PERIOD * (1000 / this.#fps); // at most fps frames/s
      const send = due && !held;
      this.#record({ at: now, changed, sent: send, held, keyframe: keyframe && changed < this.changeThreshold, speaking });
      if (!send) {
        if (!held && now - this.#lastCountedAt >= MIN_GAP_OF_PERIOD * (1000 / this.#fps)) {
          this.#lastCountedAt = now; // one skip a period, however many ticks saw no change
          this.skipped += 1;
          this.dispatchEvent(new Event("skip"));
        }
        return;
      }
      this.#lastCountedAt = now;
      if (await this.#send(video, now)) this.#lastThumb = thumb;
    });
  }

  // Run one capture at a time; the promise settles when it is done.
  #exclusive(work) {
    const run = work().finally(() => {
      this.#inFlight = null;
    });
    this.#inFlight = run;
    return run;
  }

  // Encode and emit a frame captured at `now`; true once it was emitted.
  async #send(video, now) {
    const frame = await this.#encode(video);
    if (this.#video !== video || this.#paused) return false; // stopped or paused meanwhile
    this.#lastSentAt = now;
    this.sent += 1;
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    return true;
  }

  #record(tick) {
    this.ticks.push(tick);
    if (this.ticks.length > 600) this.ticks.splice(0, this.ticks.length - 600);
  }

  #thumbnail(video) {
    const height = Math.max(1, Math.round((THUMB_WIDTH * video.videoHeight) / video.videoWidth));
    this.#thumb.width = THUMB_WIDTH;
    this.#thumb.height = height;
    const ctx = this.#thumb.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, THUMB_WIDTH, height);
    const rgba = ctx.getImageData(0, 0, THUMB_WIDTH, height).data;
    const gray = new Uint8Array(THUMB_WIDTH * height);
    for (let i = 0; i < gray.length; i += 1) {
      gray[i] = (rgba[4 * i] * 77 + rgba[4 * i + 1] * 150 + rgba[4 * i + 2] * 29) >> 8;
    }
    return gray;
  }

  async #encode(video) {
    const scale = Math.min(1, this.maxSide / Math.max(video.videoWidth, video.videoHeight));
    const width = Math.max(1, Math.round(video.videoWidth * scale));
    const height = Math.max(1, Math.round(video.videoHeight * scale));
    this.#canvas.width = width;
    this.#canvas.height = height;
    this.#canvas.getContext("2d").drawImage(video, 0, 0, width, height);
    const blob = await new Promise((resolve) => this.#canvas.toBlob(resolve, "image/jpeg", this.quality));
    return { jpeg: await blob.arrayBuffer(), width, height };
  }
}

function clampFps(value) {
  const fps = Number(value);
  if (!Number.isFinite(fps)) return 1;
  return Math.min(FPS_RANGE.max, Math.max(FPS_RANGE.min, fps));
}

function changedFraction(a, b) {
  if (a.length !== b.length) return 1;
  let changed = 0;
  for (let i = 0; i < a.length; i += 1) {
    if (Math.abs(a[i] - b[i]) > PIXEL_DELTA) changed += 1;
  }
  return changed / a.length;
}
