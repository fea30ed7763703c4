// The preview: the last frame actually sent to the model, and the pause toggle.
//
//   const preview = new Preview($("preview"), $("pause-share"));
//   preview.attach(screen);              // a started ScreenCapture: the toggle acts on it
//   preview.sent(frame);                 // {jpeg, width, height}: the bytes that went out
//   preview.unchanged();                 // a tick skipped its frame (nothing changed)
//   preview.detach();                    // sharing ended
//
// The image is a blob URL of the very JPEG bytes sent, shown at the frame's own aspect
// ratio, with its pixel size and its age. Pausing stops the frames only: the microphone
// goes on, so the model still hears the user while it does not see the screen.
import { _, interpolate } from "./i18n.js";

const AGE_EVERY_MS = 1000;

export class Preview {
  #url = null;
  #sentAt = null;
  #timer = null;

  /**
   * @param {HTMLElement} element the preview (holds [data-preview-image], -size, -age, -mark)
   * @param {HTMLButtonElement} button the pause toggle
   */
  constructor(element, button) {
    this.element = element;
    this.button = button;
    this.image = element.querySelector("[data-preview-image]");
    this.size = element.querySelector("[data-preview-size]");
    this.age = element.querySelector("[data-preview-age]");
    this.mark = element.querySelector("[data-preview-mark]");
    this.screen = null;
    this.frame = null; // the last frame shown: {jpeg, width, height}
    button.addEventListener("click", () => this.toggle());
    this.#showPaused(false);
  }

  /** Whether sharing is paused. */
  get paused() {
    return Boolean(this.screen?.paused);
  }

  /** Act on a started capture; sharing starts unpaused. */
  attach(screen) {
    this.screen = screen;
    this.button.disabled = false;
    this.#showPaused(false);
    this.#setMark("", "");
  }

  /** Sharing ended: no toggle; the last frame stays, marked as no longer shared. */
  detach() {
    this.screen = null;
    this.button.disabled = true;
    this.#showPaused(false);
    if (this.frame) this.#setMark("stopped", _("not shared"));
  }

  /** Forget the last frame (a new session starts). */
  clear() {
    this.#stopAge();
    if (this.#url) URL.revokeObjectURL(this.#url);
    this.#url = null;
    this.frame = null;
    this.#sentAt = null;
    this.image.removeAttribute("src");
    this.image.hidden = true;
    this.size.textContent = "";
    this.age.textContent = "";
    this.#setMark("", _("Nothing sent yet"));
  }

  /** A frame went out to the model: show its bytes, size and age. */
  sent(frame) {
    const url = URL.createObjectURL(new Blob([frame.jpeg], { type: "image/jpeg" }));
    if (this.#url) URL.revokeObjectURL(this.#url);
    this.#url = url;
    this.frame = frame;
    this.#swapImage(url, frame);
    this.element.dataset.width = frame.width;
    this.element.dataset.height = frame.height;
    this.size.textContent = interpolate(_("%(width)s × %(height)s px"), frame);
    this.#sentAt = performance.now();
    this.#setMark("sent", _("sent"));
    this.#showAge();
    this.#stopAge();
    this.#timer = setInterval(() => this.#showAge(), AGE_EVERY_MS);
  }

  // Show the image once decoded, so that the preview never flashes blank in between
  // (the preview may itself be on the screen being shared).
  #swapImage(url, frame) {
    const decoded = new Image();
    decoded.src = url;
    const show = () => {
      if (this.#url !== url) return; // a newer frame came meanwhile
      this.image.width = frame.width; // with CSS height:auto, the frame's own aspect ratio
      this.image.height = frame.height;
      this.image.src = url;
      this.image.hidden = false;
    };
    decoded.decode().then(show, show);
  }

  /** A tick found the screen unchanged and sent nothing. */
  unchanged() {
    if (!this.paused) this.#setMark("unchanged", _("unchanged"));
  }

  /** Pause or resume sharing; resuming sends a fresh frame at once. */
  toggle() {
    const screen = this.screen;
    if (!screen) return;
    if (screen.paused) screen.resume();
    else screen.pause();
    this.#showPaused(screen.paused);
  }

  #showPaused(paused) {
    this.button.setAttribute("aria-pressed", String(paused));
    this.button.textContent = paused ? _("Resume sharing") : _("Pause sharing");
    this.element.dataset.paused = String(paused);
    if (paused) this.#setMark("paused", _("Paused: the model does not see the screen (it still hears you)"));
    else if (this.mark.dataset.mark === "paused") this.#setMark("", "");
  }

  #setMark(mark, text) {
    this.mark.dataset.mark = mark;
    this.mark.textContent = text;
  }

  #showAge() {
    if (this.#sentAt === null) return;
    const seconds = Math.max(0, Math.round((performance.now() - this.#sentAt) / 1000));
    this.age.textContent = interpolate(_("%(seconds)s s ago"), { seconds });
  }

  #stopAge() {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
