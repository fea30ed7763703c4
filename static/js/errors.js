// The technical side of what went wrong, shown collapsed under the status: the error's
// code and the server's own message, the model service's close code and reason, the
// server's detail line, the socket's close code, the session's end reason. The headline
// is a plain sentence from messages.js.
import { _, interpolate } from "./i18n.js";

export class ErrorDetails {
  constructor(element) {
    this.element = element;
    this.text = element.querySelector("[data-error-detail]");
  }

  // An `error` message: {code, message, upstream_code?, upstream_reason?, detail?}.
  show(error) {
    this.#set(describe(error));
  }

  // A close of the socket that no error explained: {code, reason}.
  showClose(close) {
    this.#set(describeClose(close));
  }

  // `status ended` with a reason the user did not choose: {reason, message?}.
  showEnd(ended) {
    this.#set(describeEnd(ended));
  }

  clear() {
    this.element.hidden = true;
    this.text.textContent = "";
  }

  #set(text) {
    this.text.textContent = text;
    this.element.open = false;
    this.element.hidden = false;
  }
}

const joined = (parts) => parts.filter(Boolean).join(" · ");

// "model_refused · The server's sentence. · model service closed 1008: Reason. · detail",
// the parts that are present only.
export function describe({ code, message, upstream_code: upstreamCode, upstream_reason: upstreamReason, detail }) {
  const parts = [code, message];
  if (upstreamCode !== undefined && upstreamCode !== null) {
    parts.push(`model service closed ${upstreamCode}${upstreamReason ? `: ${upstreamReason}` : ""}`);
  }
  parts.push(detail);
  return joined(parts);
}

// "connection closed 1006", with the close frame's reason when there was one.
export function describeClose({ code, reason }) {
  const closed = interpolate(_("connection closed %(code)s"), { code });
  return joined([closed, reason]);
}

// "ended: idle_timeout · the server's sentence".
export function describeEnd({ reason, message }) {
  const ended = interpolate(_("ended: %(reason)s"), { reason: reason || "?" });
  return joined([ended, message]);
}
