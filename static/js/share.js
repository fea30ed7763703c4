// The share page: wires the socket, the controls and the transcript together.
import { CloseCode, ShareSocket } from "./socket.js";
import { TranscriptView } from "./transcript.js";

const $ = (id) => document.getElementById(id);

class SharePage {
  constructor(root) {
    this.root = root;
    this.transcript = new TranscriptView($("transcript"));
    this.socket = null;
    $("start").addEventListener("click", () => this.start());
    $("stop").addEventListener("click", () => this.stop());
    $("text-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendText();
    });
  }

  setStatus(state, message = "") {
    const el = $("status");
    el.dataset.state = state;
    const labels = { idle: "Idle", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", ended: "Ended", error: "Error" };
    el.textContent = message ? `${labels[state]}: ${message}` : labels[state];
    const live = state === "live";
    $("start").disabled = state === "connecting" || live;
    $("stop").disabled = !live;
    $("text-input").disabled = !live;
    $("send-text").disabled = !live;
  }

  start() {
    this.setStatus("connecting");
    const options = { type: "start", mode: $("mode").value, voice: $("voice").value };
    if (this.socket && this.socket.open) {
      this.socket.sendJson(options);
      return;
    }
    this.socket = new ShareSocket(this.root.dataset.wsPath);
    this.socket.addEventListener("hello", () => this.socket.sendJson(options));
    this.socket.addEventListener("status", (e) => this.onStatus(e.detail));
    this.socket.addEventListener("transcript", (e) =>
      e.detail.final ? this.transcript.typed(e.detail) : this.transcript.fragment(e.detail),
    );
    this.socket.addEventListener("turn_complete", () => this.transcript.endTurn());
    this.socket.addEventListener("interrupted", () => this.transcript.endTurn());
    this.socket.addEventListener("usage", (e) => {
      this.root.querySelector('[data-stat="tokens"]').textContent = e.detail.total_tokens;
    });
    this.socket.addEventListener("error", (e) => this.setStatus("error", e.detail.message));
    this.socket.addEventListener("close", (e) => this.onClose(e.detail));
  }

  onStatus({ state, reason }) {
    if (state === "ended") this.transcript.endTurn();
    this.setStatus(state, state === "ended" && reason ? reason.replaceAll("_", " ") : "");
  }

  onClose({ code, reason }) {
    this.socket = null;
    if (code === CloseCode.UNAUTHENTICATED) this.setStatus("error", "please log in again");
    else if ($("status").dataset.state !== "error" && $("status").dataset.state !== "ended") {
      this.setStatus(code === CloseCode.NORMAL ? "ended" : "error", reason || `connection closed (${code})`);
    }
  }

  stop() {
    this.socket?.sendJson({ type: "stop" });
  }

  sendText() {
    const input = $("text-input");
    const text = input.value.trim();
    if (!text || !this.socket) return;
    this.socket.sendJson({ type: "text", text });
    input.value = "";
  }
}

window.sharePage = new SharePage($("share"));
