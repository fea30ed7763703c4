// The live transcript: fragments are merged into one line per speaker per turn, in order.
import { _ } from "./i18n.js";

export class TranscriptView {
  constructor(list) {
    this.list = list;
    this.open = new Map(); // role -> <li> of the turn in progress
  }

  fragment({ role, source, text }) {
    let line = this.open.get(role);
    if (!line) {
      line = this.#line(role, source);
      this.open.set(role, line);
      // The user's line of a turn goes before the model's, as it is stored.
      const modelLine = this.open.get("model");
      if (role === "user" && modelLine && modelLine !== line) this.list.insertBefore(line, modelLine);
    }
    line.querySelector(".text").textContent += text;
    this.#scroll();
  }

  typed({ role, source, text }) {
    const line = this.#line(role, source);
    line.querySelector(".text").textContent = text;
    line.classList.add("final");
    this.#scroll();
  }

  endTurn() {
    for (const line of this.open.values()) line.classList.add("final");
    this.open.clear();
  }

  #line(role, source) {
    const line = document.createElement("li");
    line.className = `line ${role}`;
    line.dataset.role = role;
    line.dataset.source = source;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? (source === "typed" ? _("You (typed)") : _("You")) : _("Assistant");
    const text = document.createElement("span");
    text.className = "text";
    line.append(who, text);
    this.list.append(line);
    return line;
  }

  #scroll() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
