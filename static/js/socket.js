// The browser side of the share protocol (docs/protocol.md): JSON control frames and
// binary media frames with a one-byte kind tag.

export const Kind = Object.freeze({ AUDIO: 0x01, JPEG: 0x02, PNG: 0x03 });

// Every close code the server uses (docs/protocol.md, "Close codes").
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  INTERNAL_ERROR: 1011, // an error in the server ended the session
  PROTOCOL_ERROR: 4400, // too many malformed messages
  UNAUTHENTICATED: 4401, // not logged in
  RATE_LIMITED: 4429, // kept sending too fast after a warning
  UPSTREAM_FAILED: 4502, // the model connection failed
  STORAGE_UNAVAILABLE: 4503, // the database was away too long to keep the transcript
});

// Model audio frames are acknowledged (`ack`) every ACK_EVERY frames, and ACK_DELAY_MS
// after the last one: the server sends no more than a few seconds of speech ahead of them.
const ACK_EVERY = 4;
const ACK_DELAY_MS = 250;

export class ShareSocket extends EventTarget {
  #audioFrames = 0; // model audio frames received since the session's `connecting`
  #ackedFrames = 0;
  #ackTimer = null;

  constructor(path) {
    super();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${scheme}//${location.host}${path}`);
    this.ws.binaryType = "arraybuffer";
    this.ws.addEventListener("message", (event) => this.#onMessage(event));
    this.ws.addEventListener("open", () => this.dispatchEvent(new Event("open")));
    this.ws.addEventListener("close", (event) =>
      this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } })),
    );
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  sendJson(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  sendMedia(kind, payload) {
    if (!this.open) return false;
    const bytes = new Uint8Array(payload.byteLength + 1);
    bytes[0] = kind;
    bytes.set(new Uint8Array(payload.buffer ?? payload, payload.byteOffset ?? 0, payload.byteLength), 1);
    this.ws.send(bytes);
    return true;
  }

  close() {
    this.ws.close(CloseCode.NORMAL);
  }

  // Tell the server how many model audio frames arrived, now or a little later.
  #countAudio() {
    this.#audioFrames += 1;
    if (this.#audioFrames - this.#ackedFrames >= ACK_EVERY) this.#ack();
    else if (this.#ackTimer === null) this.#ackTimer = setTimeout(() => this.#ack(), ACK_DELAY_MS);
  }

  #ack() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#audioFrames === this.#ackedFrames) return;
    this.#ackedFrames = this.#audioFrames;
    this.sendJson({ type: "ack", audio: this.#audioFrames });
  }

  // A session starts (or ended): its frames are counted from zero.
  #resetAudioCount() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.#audioFrames = this.#ackedFrames = 0;
  }

  #onMessage(event) {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "status" && ["connecting", "ended"].includes(message.state)) {
        this.#resetAudioCount();
      }
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      return;
    }
    const bytes = new Uint8Array(event.data);
    if (bytes.length > 1 && bytes[0] === Kind.AUDIO) {
      this.#countAudio();
      const pcm = event.data.slice(1);
      this.dispatchEvent(new CustomEvent("audio", { detail: pcm }));
    }
  }
}
