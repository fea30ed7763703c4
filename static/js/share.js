// The share page: screen, microphone, playback, transcript, notes and stats over one socket.
import { MicCapture } from "./audio/mic.js";
import { Player } from "./audio/player.js";
import { ScreenCapture } from "./screen.js";
import { NotesView } from "./notes.js";
import { CloseCode, Kind, ShareSocket } from "./socket.js";
import { Stats } from "./stats.js";
import { TranscriptView } from "./transcript.js";

const $ = (id) => document.getElementById(id);

const LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Ended",
  error: "Error",
};

class SharePage {
  constructor(root) {
    this.root = root;
    this.transcript = new TranscriptView($("transcript"));
    this.stats = new Stats($("stats"));
    this.notes = new NotesView($("notes"));
    this.socket = null;
    this.screen = null;
    this.mic = null;
    this.player = null;
    this.live = false;
    $("start").addEventListener("click", () => this.start());
    $("stop").addEventListener("click", () => this.stop());
    $("mic-toggle").addEventListener("click", () => this.toggleMic());
    $("speaker-toggle").addEventListener("click", () => this.toggleSpeaker());
    $("fps").addEventListener("change", () => {
      if (this.screen) this.screen.fps = Number($("fps").value);
    });
    $("text-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendText();
    });
  }

  get state() {
    return $("status").dataset.state;
  }

  setStatus(state, message = "") {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = message ? `${LABELS[state]}: ${message}` : LABELS[state];
    // While the server resumes the model connection it buffers media and text: keep sending.
    this.live = state === "live" || state === "reconnecting";
    const busy = state === "connecting" || state === "live" || state === "reconnecting";
    $("start").disabled = busy;
    $("stop").disabled = !busy;
    for (const id of ["mode", "voice"]) $(id).disabled = busy; // chosen before starting
    for (const id of ["text-input", "send-text"]) $(id).disabled = !this.live;
    $("mic-toggle").disabled = !this.mic;
    $("speaker-toggle").disabled = !this.player;
  }

  notice(text) {
    $("notice").textContent = text;
  }

  async start() {
    this.setStatus("connecting");
    this.notice("");
    const mode = $("mode").value;
    try {
      // Audio contexts are created here, inside the click, so that they may play.
      if (mode === "audio") await this.#startPlayer();
      await this.#startMic();
      await this.#startScreen();
    } catch (error) {
      this.#release();
      this.setStatus("error", error.message);
      return;
    }
    this.#openSocket({ type: "start", mode, voice: $("voice").value });
  }

  stop() {
    this.socket?.sendJson({ type: "stop" });
    this.#release();
  }

  toggleMic() {
    if (!this.mic) return;
    this.mic.muted = !this.mic.muted;
    $("mic-toggle").setAttribute("aria-pressed", String(this.mic.muted));
    $("mic-toggle").textContent = this.mic.muted ? "Unmute mic" : "Mute mic";
  }

  toggleSpeaker() {
    if (!this.player) return;
    this.player.muted = !this.player.muted;
    $("speaker-toggle").setAttribute("aria-pressed", String(this.player.muted));
    $("speaker-toggle").textContent = this.player.muted ? "Unmute speaker" : "Mute speaker";
  }

  sendText() {
    const input = $("text-input");
    const text = input.value.trim();
    if (!text || !this.live) return;
    this.socket.sendJson({ type: "text", text });
    this.stats.textSent();
    input.value = "";
  }

  async #startPlayer() {
    this.player = new Player();
    await this.player.start();
    this.player.addEventListener("state", (e) => {
      $("speaking").hidden = !e.detail.speaking;
    });
  }

  async #startMic() {
    this.mic = new MicCapture();
    try {
      await this.mic.start();
    } catch (error) {
      this.mic = null;
      this.notice(`Microphone unavailable (${error.message}): type instead.`);
      return;
    }
    this.mic.addEventListener("level", (e) => {
      $("level").value = e.detail.rms;
      this.stats.micLevel(e.detail.rms);
    });
    this.mic.addEventListener("chunk", (e) => {
      if (this.live && this.socket.sendMedia(Kind.AUDIO, e.detail)) {
        this.stats.audioSent(e.detail.byteLength / 2);
      }
    });
  }

  async #startScreen() {
    const data = this.root.dataset;
    this.screen = new ScreenCapture({
      fps: Number($("fps").value),
      maxSide: Number(data.maxSide),
      quality: Number(data.quality),
      keyframeS: Number(data.keyframeS),
      changeThreshold: Number(data.changeThreshold),
    });
    try {
      await this.screen.start();
    } catch (error) {
      this.screen = null;
      this.notice(`Screen not shared (${error.message}): audio only.`);
      return;
    }
    this.screen.addEventListener("frame", (e) => {
      if (this.live) this.socket.sendMedia(Kind.JPEG, e.detail.jpeg);
      this.stats.frames(this.screen);
    });
    this.screen.addEventListener("skip", () => this.stats.frames(this.screen));
    this.screen.addEventListener("ended", () => {
      this.notice("Screen sharing stopped: the session goes on with audio only.");
    });
  }

  #openSocket(startMessage) {
    if (this.socket?.open) {
      this.socket.sendJson(startMessage);
      return;
    }
    const socket = new ShareSocket(this.root.dataset.wsPath);
    this.socket = socket;
    const on = (type, handler) => socket.addEventListener(type, (e) => handler(e.detail));
    on("hello", () => socket.sendJson(startMessage));
    on("status", (m) => this.#onStatus(m));
    on("audio", (pcm) => {
      this.stats.modelOutput();
      this.player?.enqueue(pcm);
    });
    on("transcript", (m) => {
      if (m.final) return this.transcript.typed(m);
      if (m.role === "model") this.stats.modelOutput();
      this.transcript.fragment(m);
    });
    on("turn_complete", () => this.transcript.endTurn());
    on("interrupted", () => {
      this.player?.flush();
      this.transcript.endTurn();
    });
    on("usage", (m) => this.stats.usage(m));
    on("note", (m) => this.notes.add(m));
    on("error", (m) => this.#onError(m));
    on("close", (m) => this.#onClose(m));
  }

  #onStatus({ state, reason, message }) {
    if (state === "handed_over") {
      this.stats.handover(); // a seamless switch of model connection: nothing to show
      return;
    }
    if (state === "resumed") {
      this.setStatus("live");
      this.notice("Reconnected: the conversation goes on.");
      return;
    }
    if (state === "ended") {
      this.transcript.endTurn();
      this.#release();
    }
    const detail = state === "ended" ? message || (reason || "").replaceAll("_", " ") : "";
    this.setStatus(state, detail);
  }

  #onError({ code, message }) {
    // Refused messages are reported without ending the session; a failed start ends it.
    if (this.live) this.notice(`${message} (${code})`);
    else this.setStatus("error", message);
  }

  #onClose({ code, reason }) {
    this.socket = null;
    this.#release();
    if (code === CloseCode.UNAUTHENTICATED) this.setStatus("error", "please log in again");
    else if (this.state !== "error" && this.state !== "ended") {
      this.setStatus(code === CloseCode.NORMAL ? "ended" : "error", reason || `connection closed (${code})`);
    }
  }

  #release() {
    this.screen?.stop();
    this.mic?.stop();
    this.player?.stop();
    this.screen = null;
    this.mic = null;
    this.player = null;
    $("speaking").hidden = true;
    $("level").value = 0;
  }
}

window.sharePage = new SharePage($("share"));
