// The technical side of the last error, shown collapsed under the status: the error's
// code, the model service's close code and reason, and the server's detail line. The
// error's `message`, a sentence for people, is shown by the page as the headline.

export class ErrorDetails {
  constructor(element) {
    this.element = element;
    this.text = element.querySelector("[data-error-detail]");
  }

  // An `error` message: {code, message, upstream_code?, upstream_reason?, detail?}.
  show(error) {
    this.text.textContent = describe(error);
    this.element.open = false;
    this.element.hidden = false;
  }

  clear() {
    this.element.hidden = true;
    this.text.textContent = "";
  }
}

// "model_refused · model service closed 1008: Reason. · detail", parts that are present only.
export function describe({ code, upstream_code: upstreamCode, upstream_reason: upstreamReason, detail }) {
  const parts = [code];
  if (upstreamCode !== undefined && upstreamCode !== null) {
    parts.push(`model service closed ${upstreamCode}${upstreamReason ? `: ${upstreamReason}` : ""}`);
  }
  if (detail) parts.push(detail);
  return parts.filter(Boolean).join(" · ");
}
