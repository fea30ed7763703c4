// Push-to-talk: the user holds the talk button, or the space bar, to speak.
//
// A session started with push-to-talk has no automatic activity detection at the model
// service: the page says when the user's turn starts and ends (`activity_start`,
// `activity_end`), sends microphone audio only in between, and never sends `audio_end`.
// This module only tracks the hold; share.js sends the messages ("press" and "release"
// events) and gates the audio on `held`.
import { _ } from "./i18n.js";

// Where the space bar belongs to the control that has the focus, not to talking.
const OWN_KEYS = "input, textarea, select, button, a[href], summary, [contenteditable]";

export class PushToTalk extends EventTarget {
  // button: the hold-to-talk button; checkbox: the "Push to talk" choice made before start.
  constructor(button, checkbox) {
    super();
    this.button = button;
    this.checkbox = checkbox;
    this.enabled = false; // a live push-to-talk session takes activity signals now
    this.held = false;
    this.button.textContent = _("Hold to talk");
    this.button.addEventListener("pointerdown", (event) => this.#pointerDown(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      this.button.addEventListener(type, () => this.release());
    }
    this.button.addEventListener("contextmenu", (event) => event.preventDefault());
    document.addEventListener("keydown", (event) => this.#key(event, true));
    document.addEventListener("keyup", (event) => this.#key(event, false));
    window.addEventListener("blur", () => this.release()); // a key-up we will never see
    this.checkbox.addEventListener("change", () => this.#show());
    this.#show();
  }

  // Whether the user chose push-to-talk for the next session.
  get chosen() {
    return this.checkbox.checked;
  }

  // Enable or disable the hold (a live push-to-talk session, or not); disabling lets go
  // without a "release": there is no session to tell.
  setEnabled(enabled) {
    this.enabled = enabled;
    this.button.disabled = !enabled;
    if (!enabled) this.#setHeld(false);
  }

  press() {
    if (!this.enabled || this.held) return;
    this.#setHeld(true);
    this.dispatchEvent(new Event("press"));
  }

  release() {
    if (!this.held) return;
    this.#setHeld(false);
    this.dispatchEvent(new Event("release"));
  }

  #pointerDown(event) {
    if (event.button !== 0 || !this.enabled) return;
    event.preventDefault(); // no focus ring flicker, no text selection while held
    this.button.setPointerCapture?.(event.pointerId);
    this.press();
  }

  #key(event, down) {
    if (event.code !== "Space" || !this.enabled) return;
    const target = event.target;
    if (target !== this.button && target instanceof Element && target.closest(OWN_KEYS)) return;
    event.preventDefault(); // no page scroll, no click of the focused talk button
    if (down && !event.repeat) this.press();
    else if (!down) this.release();
  }

  #setHeld(held) {
    this.held = held;
    this.button.setAttribute("aria-pressed", String(held));
    this.button.dataset.held = String(held);
  }

  #show() {
    this.button.hidden = !this.checkbox.checked && !this.enabled;
  }
}
