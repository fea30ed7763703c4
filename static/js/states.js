// The conversation's state, shown to the user: listening, user speaking, assistant
// thinking, assistant speaking.
//
//   const states = new ConversationStates($("conversation-state"));
//   speech "speechstart"           -> states.userSpeaking()
//   audio_end sent                 -> states.userDone()      (thinking, if they spoke)
//   a text sent                    -> states.textSent()      (thinking, until output)
//   mic muted                      -> states.userQuiet()
//   model text                     -> states.modelOutput()
//   model audio given to the player -> states.modelAudio()
//   player "state" event           -> states.playing(speaking)
//   turn_complete / interrupted    -> states.turnEnded()
//
// A "change" event ({detail: {state}}) follows every change of the state shown.
//
// The state follows from a few facts, in this order: the user is speaking; the assistant
// is speaking (its reply is streaming in, or the player has yet to play or is playing
// audio it was given); the assistant
// is thinking (the user finished and no output came yet); else it listens. A turn the
// model never answers (audio it did not take for speech) lapses back to listening after
// `thinkingLapseMs` without output.
import { _ } from "./i18n.js";

const THINKING_LAPSE_MS = 15000;

const LABELS = {
  listening: () => _("Listening"),
  "user-speaking": () => _("You are speaking"),
  thinking: () => _("Assistant thinking…"),
  speaking: () => _("Assistant speaking"),
};

export class ConversationStates extends EventTarget {
  constructor(element) {
    super();
    this.element = element;
    this.history = []; // every state shown since the session started, for tests and console
    this.thinkingLapseMs = THINKING_LAPSE_MS;
    this.lapse = null;
    this.reset();
  }

  /** The state shown: listening, user-speaking, thinking or speaking. */
  get state() {
    return this.element.dataset.state;
  }

  /** A session starts (shown) or ended (hidden): nothing is going on. */
  reset({ shown = false } = {}) {
    this.user = false; // the user is speaking
    this.awaiting = false; // the user finished; no model output yet
    this.replying = false; // model output came, its turn has not ended
    this.audible = false; // the player is playing
    this.unplayed = false; // audio went to the player, which has not reported it played out
    this.element.hidden = !shown;
    if (shown) this.history = [];
    this.#show();
  }

  userSpeaking() {
    this.user = true;
    this.#show();
  }

  /** audio_end went out: if the user was speaking, their turn ended and the assistant
   * thinks (audio without speech in it asks nothing). */
  userDone() {
    if (!this.user) return;
    this.user = false;
    this.awaiting = true;
    this.#show();
  }

  /** The user sent a text: the assistant thinks. */
  textSent() {
    this.awaiting = true;
    this.#show();
  }

  /** The user stopped speaking without a turn's end (the mic was muted). */
  userQuiet() {
    this.user = false;
    this.#show();
  }

  modelOutput() {
    this.awaiting = false;
    this.replying = true;
    this.#show();
  }

  /** Model audio was handed to the player: speaking lasts until the player went quiet. */
  modelAudio() {
    if (!this.audible) this.unplayed = true; // while audible, the player's report tells
    this.modelOutput();
  }

  /** The player's report: whether it plays audio now. */
  playing(speaking) {
    this.audible = Boolean(speaking);
    if (this.audible) this.unplayed = false; // from here on, `audible` tells
    this.#show();
  }

  /** The model's turn ended (complete, interrupted or refused). */
  turnEnded({ interrupted = false } = {}) {
    this.awaiting = false;
    this.replying = false;
    if (interrupted) this.unplayed = false; // the player's queue was dropped
    this.#show();
  }

  // Thinking with no output for thinkingLapseMs: the model took no turn; back to listening.
  #watchThinking(state) {
    if (state !== "thinking") {
      clearTimeout(this.lapse);
      this.lapse = null;
    } else if (this.lapse === null) {
      this.lapse = setTimeout(() => {
        this.lapse = null;
        this.awaiting = false;
        this.#show();
      }, this.thinkingLapseMs);
    }
  }

  #compute() {
    if (this.user) return "user-speaking";
    if (this.replying || this.audible || this.unplayed) return "speaking";
    if (this.awaiting) return "thinking";
    return "listening";
  }

  #show() {
    const state = this.#compute();
    this.#watchThinking(state);
    if (this.element.dataset.state !== state || !this.element.textContent) {
      const changed = this.element.dataset.state !== state;
      this.element.dataset.state = state;
      this.element.textContent = LABELS[state]();
      if (changed) this.dispatchEvent(new CustomEvent("change", { detail: { state } }));
    }
    if (!this.element.hidden && this.history.at(-1) !== state) this.history.push(state);
  }
}
