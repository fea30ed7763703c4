// The stats panel, and the reply latency measured in the page: from the end of the user's
// speech (or a sent text) to the first model audio or text of the reply.

import { SPEECH_RMS } from "./audio/speech.js";

// Its public fields are the page's measured record: the panel shows them, and the console
// and the end-to-end tests read them through window.sharePage.stats.
export class Stats {
  constructor(panel) {
    this.panel = panel;
    this.audioSamplesSent = 0;
    this.latencies = [];
    this.tokens = 0;
    this.thoughtsTokens = 0;
    this.tokensByModality = { prompt: {}, response: {} };
    this.costUsd = null; // the session's estimated cost, as the server priced its tokens
    this.usageReports = 0;
    this.handovers = 0;
    this.firstAudioAt = null;
    this.lastAudioAt = null;
    this.#awaitingSince = null;
  }

  #awaitingSince;

  set(name, value) {
    const cell = this.panel.querySelector(`[data-stat="${name}"]`);
    if (cell) cell.textContent = value;
  }

  frames(capture) {
    this.set("frames-sent", capture.sent);
    this.set("frames-skipped", capture.skipped);
  }

  audioSent(samples) {
    const now = performance.now();
    this.firstAudioAt ??= now;
    this.lastAudioAt = now;
    this.audioSamplesSent += samples;
    this.set("audio-seconds", (this.audioSamplesSent / 16000).toFixed(1));
  }

  micLevel(rms) {
    // Every voiced moment moves the reference point: the reply is timed from speech's end.
    if (rms >= SPEECH_RMS) this.#awaitingSince = performance.now();
  }

  textSent() {
    this.#awaitingSince = performance.now();
  }

  modelOutput() {
    if (this.#awaitingSince === null) return;
    const latency = Math.round(performance.now() - this.#awaitingSince);
    this.#awaitingSince = null;
    this.latencies.push(latency);
    this.set("latency", latency);
  }

  handover() {
    this.handovers += 1;
    this.set("handovers", this.handovers);
  }

  // A `usage` message: the session's token totals, overall and per modality, and the
  // model's thinking tokens.
  usage(message) {
    const prompt = message.prompt_tokens_by_modality ?? {};
    const response = message.response_tokens_by_modality ?? {};
    this.usageReports += 1;
    this.tokens = message.total_tokens;
    this.tokensByModality = { prompt, response };
    this.set("tokens", message.total_tokens);
    this.set("tokens-in", withModalities(message.prompt_tokens ?? 0, prompt));
    this.set("tokens-out", withModalities(message.response_tokens ?? 0, response));
    this.thoughtsTokens = message.thoughts_tokens ?? 0;
    this.set("tokens-thinking", this.thoughtsTokens);
    this.#cost(message.cost_usd ?? null);
  }

  // The estimated cost in US dollars, to the hundredth of a cent ("–" when the model has
  // no price); the exact figure the server sent stays in data-usd.
  #cost(usd) {
    this.costUsd = usd;
    const cell = this.panel.querySelector('[data-stat="cost"]');
    if (!cell) return;
    cell.dataset.usd = usd === null ? "" : String(usd);
    cell.textContent = usd === null ? "–" : formatUsd(usd);
  }
}

export function formatUsd(usd) {
  return new Intl.NumberFormat(document.documentElement.lang || undefined, {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 4,
    maximumFractionDigits: 4,
  }).format(usd);
}

// "142 (audio 37 · text 105)": a total and its per-modality counts, modalities sorted.
function withModalities(total, counts) {
  const parts = Object.keys(counts)
    .sort()
    .map((modality) => `${modality.toLowerCase()} ${counts[modality]}`);
  return parts.length ? `${total} (${parts.join(" · ")})` : String(total);
}
