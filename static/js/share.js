// The share page: screen, microphone, playback, transcript, notes and stats over one socket.
//
// The model is told when the user stops talking: an `audio_end` goes out when the mic is
// muted and after a second of quiet following speech. When the user starts to speak or
// sends a text, a fresh screen frame goes first, so the model answers about the screen
// as it is now.
import { MicCapture } from "./audio/mic.js";
import { Player } from "./audio/player.js";
import { SpeechDetector } from "./audio/speech.js";
import { ErrorDetails } from "./errors.js";
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

// Error codes after which the server ends the session (docs/protocol.md, "Errors").
const FATAL_ERRORS = new Set([
  "upstream_unavailable",
  "upstream_error",
  "model_unavailable",
  "model_refused",
  "model_error",
  "internal_error",
]);

// What a close says when no error or status came before it.
const CLOSE_MESSAGES = {
  [CloseCode.INTERNAL_ERROR]: "the server hit an error",
  [CloseCode.PROTOCOL_ERROR]: "the server could not read what the page sent",
  [CloseCode.UNAUTHENTICATED]: "please log in again",
  [CloseCode.RATE_LIMITED]: "the page sent too much, too fast",
  [CloseCode.UPSTREAM_FAILED]: "the model connection failed",
  [CloseCode.STORAGE_UNAVAILABLE]: "the server could not store the transcript",
};

const RESTARTED_NOTICE = "The model connection was restarted; it has the recent conversation.";
const RESUMED_NOTICE = "Reconnected: the conversation goes on.";

class SharePage {
  constructor(root) {
    this.root = root;
    this.transcript = new TranscriptView($("transcript"));
    this.stats = new Stats($("stats"));
    this.notes = new NotesView($("notes"));
    this.errorDetails = new ErrorDetails($("error-details"));
    this.socket = null;
    this.screen = null;
    this.mic = null;
    this.speech = null;
    this.player = null;
    this.live = false;
    this.audioSinceEnd = false; // an audio chunk was sent since the last audio_end
    this.interruptedTurn = null; // the last turn whose reply was cut off
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
    this.statusMessage = message;
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
    this.errorDetails.clear();
    this.interruptedTurn = null;
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
    this.live = false; // nothing more is sent; the server answers with status ended
    this.#release();
  }

  toggleMic() {
    if (!this.mic) return;
    this.mic.muted = !this.mic.muted;
    if (this.mic.muted) {
      this.speech.reset();
      this.#endAudio();
    }
    $("mic-toggle").setAttribute("aria-pressed", String(this.mic.muted));
    $("mic-toggle").textContent = this.mic.muted ? "Unmute mic" : "Mute mic";
  }

  toggleSpeaker() {
    if (!this.player) return;
    this.player.muted = !this.player.muted;
    $("speaker-toggle").setAttribute("aria-pressed", String(this.player.muted));
    $("speaker-toggle").textContent = this.player.muted ? "Unmute speaker" : "Mute speaker";
  }

  async sendText() {
    const input = $("text-input");
    const text = input.value.trim();
    if (!text || !this.live) return;
    input.value = "";
    await this.screen?.refresh(); // the frame goes out before the text
    if (!this.live) {
      input.value ||= text; // the session ended meanwhile: keep what was typed
      return;
    }
    this.socket.sendJson({ type: "text", text });
    this.stats.textSent();
  }

  // Tell the server the user stopped talking, if audio went out since it was last told.
  #endAudio() {
    if (!this.audioSinceEnd || !this.live) return;
    this.socket.sendJson({ type: "audio_end" });
    this.audioSinceEnd = false;
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
    // The detector hears what the server got: the chunks sent while live.
    this.speech = new SpeechDetector();
    this.speech.addEventListener("speechstart", () => this.screen?.refresh());
    this.speech.addEventListener("speechend", () => this.#endAudio());
    this.mic.addEventListener("level", (e) => {
      $("level").value = e.detail.rms;
      this.stats.micLevel(e.detail.rms);
    });
    this.mic.addEventListener("chunk", (e) => {
      if (this.live && this.socket.sendMedia(Kind.AUDIO, e.detail)) {
        this.audioSinceEnd = true;
        this.stats.audioSent(e.detail.byteLength / 2);
        this.speech?.chunk(e.detail);
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
    const screen = this.screen;
    screen.addEventListener("frame", (e) => {
      if (this.live) this.socket.sendMedia(Kind.JPEG, e.detail.jpeg);
      this.stats.frames(screen);
    });
    screen.addEventListener("skip", () => this.stats.frames(screen));
    screen.addEventListener("ended", () => {
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
      if (!this.player) return; // text mode: the reply comes as text-reply transcript
      this.stats.modelOutput();
      this.player.enqueue(pcm);
    });
    on("transcript", (m) => {
      if (m.final) return this.transcript.typed(m);
      if (m.role === "model") this.stats.modelOutput();
      this.transcript.fragment(m);
    });
    on("turn_complete", (m) => this.#onTurnComplete(m));
    on("interrupted", (m) => this.#interrupt(m.turn));
    on("usage", (m) => this.stats.usage(m));
    on("note", (m) => this.notes.add(m));
    on("error", (m) => this.#onError(m));
    on("close", (m) => this.#onClose(m));
  }

  // The reply was cut off: drop its queued audio, once per turn (`interrupted` comes
  // first, then a `turn_complete` with `interrupted: true` for the same turn).
  #interrupt(turn) {
    if (turn === this.interruptedTurn) return;
    this.interruptedTurn = turn;
    this.player?.flush();
    this.transcript.endTurn();
  }

  #onTurnComplete({ turn, interrupted, message }) {
    if (interrupted) this.#interrupt(turn);
    this.transcript.endTurn();
    if (message) this.notice(message); // the service refused the turn
  }

  #onStatus({ state, reason, message }) {
    if (state === "handed_over") {
      this.stats.handover(); // a seamless switch of model connection: nothing to show
      return;
    }
    if (state === "resumed" || state === "restarted") {
      this.setStatus("live");
      this.notice(state === "resumed" ? RESUMED_NOTICE : RESTARTED_NOTICE);
      return;
    }
    if (state === "ended") {
      this.transcript.endTurn();
      this.#release();
      // The error that ended the session stays the headline.
      if (this.state === "error") return this.setStatus("error", this.statusMessage);
    }
    const detail = state === "ended" ? message || (reason || "").replaceAll("_", " ") : "";
    this.setStatus(state, detail);
  }

  // The message is for people: it is the headline; the codes go in the details line.
  #onError(error) {
    const { code, message } = error;
    if (code === "not_started" && !this.live) return; // sent just as the session ended
    this.errorDetails.show(error);
    if (this.live && !FATAL_ERRORS.has(code)) {
      this.notice(message); // a refused message: the session goes on
      return;
    }
    this.#release(); // no session (a refused start), or the server ends it
    this.setStatus("error", message);
  }

  #onClose({ code, reason }) {
    this.socket = null;
    this.#release();
    if (code === CloseCode.UNAUTHENTICATED) this.setStatus("error", CLOSE_MESSAGES[code]);
    else if (this.state === "error" || this.state === "ended") {
      this.setStatus(this.state, this.statusMessage); // what was said stays
    } else {
      const said = reason || CLOSE_MESSAGES[code] || `connection closed (${code})`;
      this.setStatus(code === CloseCode.NORMAL ? "ended" : "error", said);
    }
  }

  #release() {
    this.screen?.stop();
    this.mic?.stop();
    this.player?.stop();
    this.screen = null;
    this.mic = null;
    this.speech = null;
    this.player = null;
    this.audioSinceEnd = false;
    $("speaking").hidden = true;
    $("level").value = 0;
  }
}

// The page's state, on purpose: handy in the browser console, and what the end-to-end
// tests read (screen ticks, stats counters, the player's queue).
window.sharePage = new SharePage($("share"));
