// The share page: screen, microphone, playback, transcript, notes and stats over one socket.
//
// The model is told when the user stops talking: an `audio_end` goes out when the mic is
// muted and after a second of quiet following speech; with push-to-talk (ptt.js) the
// release of the talk button says it instead. When the user starts to speak or
// sends a text, a fresh screen frame goes first, so the model answers about the screen
// as it is now.
import { MicCapture } from "./audio/mic.js";
import { Player } from "./audio/player.js";
import { SpeechDetector } from "./audio/speech.js";
import { ErrorDetails } from "./errors.js";
import { _, interpolate } from "./i18n.js";
import { ScreenCapture } from "./screen.js";
import { NotesView } from "./notes.js";
import { Preview } from "./preview.js";
import { PushToTalk } from "./ptt.js";
import { ConversationStates } from "./states.js";
import { forClose, forEnd, forError, isFatal, LOG_IN, RETRY } from "./messages.js";
import { CloseCode, Kind, ShareSocket } from "./socket.js";
import { Stats } from "./stats.js";
import { TranscriptView } from "./transcript.js";

const $ = (id) => document.getElementById(id);

const LABELS = {
  idle: _("Idle"),
  connecting: _("Connecting…"),
  live: _("Live"),
  reconnecting: _("Reconnecting…"),
  ended: _("Ended"),
  error: _("Error"),
};

const RESTARTED_NOTICE = _("The model connection was restarted; it has the recent conversation.");
const RESUMED_NOTICE = _("Reconnected: the conversation goes on.");
const HANDED_OVER_NOTICE = _("Switched to a fresh model connection: the conversation goes on.");

class SharePage {
  constructor(root) {
    this.root = root;
    this.transcript = new TranscriptView($("transcript"));
    this.stats = new Stats($("stats"));
    this.notes = new NotesView($("notes"));
    this.errorDetails = new ErrorDetails($("error-details"));
    this.preview = new Preview($("preview"), $("pause-share"));
    this.states = new ConversationStates($("conversation-state"));
    // While nobody speaks no turn looks at the screen: keyframes slow down.
    this.states.addEventListener("change", (e) => {
      if (this.screen) this.screen.speaking = e.detail.state !== "listening";
    });
    this.ptt = new PushToTalk($("talk"), $("push-to-talk"));
    this.ptt.addEventListener("press", () => this.#talk(true));
    this.ptt.addEventListener("release", () => this.#talk(false));
    this.pushToTalk = false; // the session's choice, made before start
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
    $("retry").addEventListener("click", () => this.start());
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
    for (const id of ["mode", "voice", "speech-language"]) $(id).disabled = busy; // chosen before starting
    for (const id of ["text-input", "send-text"]) $(id).disabled = !this.live;
    $("push-to-talk").disabled = busy;
    this.ptt.setEnabled(this.live && this.pushToTalk);
    $("mic-toggle").disabled = !this.mic;
    $("speaker-toggle").disabled = !this.player;
  }

  notice(text) {
    $("notice").textContent = text;
  }

  async start() {
    this.pushToTalk = this.ptt.chosen;
    this.setStatus("connecting");
    this.notice("");
    this.errorDetails.clear();
    this.#offer(null);
    this.interruptedTurn = null;
    this.preview.clear();
    this.states.reset({ shown: true });
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
    this.#openSocket({ type: "start", mode, voice: $("voice").value, language: $("speech-language").value, push_to_talk: this.pushToTalk });
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
      this.states.userQuiet();
    }
    $("mic-toggle").setAttribute("aria-pressed", String(this.mic.muted));
    $("mic-toggle").textContent = this.mic.muted ? _("Unmute mic") : _("Mute mic");
  }

  toggleSpeaker() {
    if (!this.player) return;
    this.player.muted = !this.player.muted;
    $("speaker-toggle").setAttribute("aria-pressed", String(this.player.muted));
    $("speaker-toggle").textContent = this.player.muted ? _("Unmute speaker") : _("Mute speaker");
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
    this.states.textSent();
  }

  // Tell the server the user stopped talking, if audio went out since it was last told.
  #endAudio() {
    if (this.pushToTalk || !this.audioSinceEnd || !this.live) return; // the release ends it
    this.socket.sendJson({ type: "audio_end" });
    this.audioSinceEnd = false;
    this.states.userDone();
  }

  // Push-to-talk: the user's turn starts on the press and ends on the release; the mic's
  // audio goes out only in between.
  #talk(pressed) {
    if (!this.live) return;
    this.socket.sendJson({ type: pressed ? "activity_start" : "activity_end" });
    if (!pressed) return this.states.userDone();
    this.states.userSpeaking();
    this.screen?.refresh(); // the screen as it is now, with the question
  }

  async #startPlayer() {
    this.player = new Player();
    await this.player.start();
    this.player.addEventListener("state", (e) => {
      $("speaking").hidden = !e.detail.speaking;
      this.states.playing(e.detail.speaking);
    });
  }

  async #startMic() {
    this.mic = new MicCapture();
    try {
      await this.mic.start();
    } catch (error) {
      this.mic = null;
      this.notice(interpolate(_("Microphone unavailable (%(error)s): type instead."), { error: error.message }));
      return;
    }
    // The detector hears what the server got: the chunks sent while live.
    this.speech = new SpeechDetector();
    this.speech.addEventListener("speechstart", () => {
      this.states.userSpeaking();
      this.screen?.refresh();
    });
    this.speech.addEventListener("speechend", () => this.#endAudio());
    this.mic.addEventListener("level", (e) => {
      $("level").value = e.detail.rms;
      this.stats.micLevel(e.detail.rms);
    });
    this.mic.addEventListener("chunk", (e) => {
      const open = !this.pushToTalk || this.ptt.held; // push-to-talk: only while held
      if (this.live && open && this.socket.sendMedia(Kind.AUDIO, e.detail)) {
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
      idleKeyframeS: Number(data.idleKeyframeS),
      changeThreshold: Number(data.changeThreshold),
    });
    try {
      await this.screen.start();
    } catch (error) {
      this.screen = null;
      this.notice(interpolate(_("Screen not shared (%(error)s): audio only."), { error: error.message }));
      return;
    }
    const screen = this.screen;
    screen.addEventListener("frame", (e) => {
      if (this.live && this.socket.sendMedia(Kind.JPEG, e.detail.jpeg)) this.preview.sent(e.detail);
      this.stats.frames(screen);
    });
    screen.addEventListener("skip", () => {
      this.stats.frames(screen);
      this.preview.unchanged();
    });
    this.preview.attach(screen);
    screen.addEventListener("ended", () => {
      this.preview.detach();
      this.notice(_("Screen sharing stopped: the session goes on with audio only."));
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
      this.states.modelAudio();
    });
    on("transcript", (m) => {
      if (m.final) return this.transcript.typed(m);
      if (m.role === "model") {
        this.stats.modelOutput();
        this.states.modelOutput();
      }
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
    this.states.turnEnded({ interrupted: true });
  }

  #onTurnComplete({ turn, interrupted, message }) {
    if (interrupted) this.#interrupt(turn);
    this.transcript.endTurn();
    this.states.turnEnded({ interrupted });
    if (message) this.notice(message); // the service refused the turn
  }

  #onStatus({ state, reason, message }) {
    if (state === "handed_over") {
      this.stats.handover(); // a seamless switch of model connection: a quiet notice
      this.notice(HANDED_OVER_NOTICE);
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
      return this.#ended(reason, message);
    }
    this.setStatus(state);
  }

  // The plain sentence for the end reason; the reason and the server's words in details.
  #ended(reason, message) {
    if (reason && reason !== "client_stop") this.errorDetails.showEnd({ reason, message });
    this.#tell("ended", forEnd(reason));
  }

  // A sentence of messages.js as the headline, with the retry button or login link it offers.
  #tell(state, { text, action }) {
    this.setStatus(state, text);
    this.#offer(action);
  }

  #offer(action) {
    $("retry").hidden = action !== RETRY;
    $("log-in-again").hidden = action !== LOG_IN;
  }

  // The headline is the code's plain sentence; the codes and the server's message go in
  // the details line.
  #onError(error) {
    const { code } = error;
    if (code === "not_started" && !this.live) return; // sent just as the session ended
    this.errorDetails.show(error);
    const told = forError(error);
    if (this.live && !isFatal(code)) {
      this.notice(told.text); // a refused message: the session goes on
      return;
    }
    this.#release(); // no session (a refused start), or the server ends it
    this.#tell("error", told);
  }

  #onClose({ code, reason }) {
    this.socket = null;
    this.#release();
    const unexplained = !["error", "ended"].includes(this.state);
    if (code === CloseCode.UNAUTHENTICATED || (unexplained && code !== CloseCode.NORMAL)) {
      this.errorDetails.showClose({ code, reason });
      this.#tell("error", forClose(code));
    } else if (unexplained) {
      this.#tell("ended", forClose(code));
    } else {
      this.setStatus(this.state, this.statusMessage); // what was said stays
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
    this.ptt.setEnabled(false);
    this.preview.detach();
    this.states.reset();
    $("speaking").hidden = true;
    $("level").value = 0;
  }
}

// The page's state, on purpose: handy in the browser console, and what the end-to-end
// tests read (screen ticks, stats counters, the player's queue).
window.sharePage = new SharePage($("share"));
