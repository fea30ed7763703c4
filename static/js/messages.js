// What the share page tells people when something goes wrong: one plain sentence, saying
// what to do, for every error code, close code and end reason the server can send
// (docs/protocol.md, "Errors" and "Close codes"; LiveSession.EndReason). The raw code and
// the server's own message go in the details line (errors.js), never in the headline.
//
// Each entry is {text, action?, fatal?}: `action` is "retry" (the page offers a button
// that starts again) or "login" (a link to the login page); `fatal` marks an error after
// which the server ends the session. tests/unit/test_page_messages.py checks that every
// code has an entry, so a code added without a sentence fails the build.
import { _, interpolate } from "./i18n.js";
import { CloseCode } from "./socket.js";

export const RETRY = "retry";
export const LOG_IN = "login";

// The browser's own close code when the connection dropped without a close frame, or
// never opened (the server is down, the network is gone).
export const CONNECTION_LOST = 1006;

// A setting's name stays out of the translated text, so that it is never translated.
const naming = (text, setting) => interpolate(text, { setting });

const UNREADABLE = _("The page sent something the server could not read; it was skipped. Reload the page if this keeps happening.");
const NOT_STARTED = _("No session is running. Press Start first.");
const MODEL_LOST = _("The connection to the model was lost and could not be restored. Start again.");
const MODEL_UNREACHABLE = _("The assistant's model could not be reached. Try again in a minute; if it keeps failing, tell an administrator.");
const MODEL_UNAVAILABLE = naming(
  _("The assistant's model is not available. Tell an administrator to set %(setting)s to a current model."),
  "GEMINI_MODEL",
);
const MODEL_REFUSED = naming(
  _("The model service refused this session's settings. Tell an administrator to check the %(setting)s setting."),
  "GEMINI_MODEL",
);
const API_KEY_REFUSED = naming(
  _("The model service did not accept the server's API key. Tell an administrator to check the %(setting)s setting."),
  "GEMINI_API_KEY",
);
const SERVER_ERROR = _("The server hit an error and ended the session. Start again; if it happens again, tell an administrator.");
const ANOTHER_TAB = _("A session is already running in another tab or on another device. Stop it there, then start here.");
const SERVER_FULL = _("The server is full right now. Try again in a minute.");
const TOO_FAST = _("The page sent too much, too fast, so the session ended. Start again with fewer frames per second.");
const UNREADABLE_CLOSE = _("The page kept sending messages the server could not read, so the session ended. Reload the page and start again.");
const STORAGE_LOST = _("The server could not store the transcript for too long, so the session ended. What was said so far is kept. Try again in a minute.");
const BUDGET = _("Your daily allowance for the assistant is used up. It resets at midnight; to go on today, ask an administrator to raise it.");

// The `code` of an `error` message.
export const ERRORS = {
  bad_json: { text: UNREADABLE },
  bad_message: { text: UNREADABLE },
  unknown_type: { text: UNREADABLE },
  invalid_field: { text: UNREADABLE },
  too_large: { text: _("That was too large to send and was skipped. Type a shorter message; if screen frames keep being skipped, tell an administrator.") },
  empty_frame: { text: UNREADABLE },
  unknown_kind: { text: UNREADABLE },
  bad_image: { text: _("A screen frame could not be read and was skipped. Reload the page if this keeps happening.") },
  bad_audio: { text: _("A piece of microphone audio could not be read and was skipped. Reload the page if this keeps happening.") },
  not_started: { text: NOT_STARTED },
  already_started: { text: _("A session is already running on this page. Stop it before starting another.") },
  upstream_unavailable: { text: MODEL_UNREACHABLE, action: RETRY, fatal: true },
  upstream_error: { text: MODEL_LOST, action: RETRY, fatal: true },
  model_unavailable: { text: MODEL_UNAVAILABLE, fatal: true },
  model_refused: { text: MODEL_REFUSED, fatal: true },
  model_error: { text: _("The model service had an internal error. Try again in a minute."), action: RETRY, fatal: true },
  internal_error: { text: SERVER_ERROR, action: RETRY, fatal: true },
  too_many_sessions: { text: ANOTHER_TAB },
  server_busy: { text: SERVER_FULL, action: RETRY },
  rate_limited: { text: _("The page is sending too much, too fast; some of it was dropped. Choose fewer frames per second.") },
  storage_unavailable: { text: _("The server cannot reach its database right now, so the session did not start. Try again in a minute."), action: RETRY },
  wrong_mic_mode: { text: _("The microphone mode does not match this session. Stop, then start again to switch between push-to-talk and automatic.") },
  budget_warning: { text: _("You have used 90% of your daily allowance for the assistant. The session ends when it is used up.") },
  budget_exhausted: { text: BUDGET, fatal: true },
};

// The close code of the socket, when no error or status said more before it.
export const CLOSES = {
  [CloseCode.NORMAL]: { text: _("The session ended.") },
  [CONNECTION_LOST]: { text: _("The connection to the server dropped. Check your network, then try again."), action: RETRY },
  [CloseCode.INTERNAL_ERROR]: { text: SERVER_ERROR, action: RETRY },
  [CloseCode.PROTOCOL_ERROR]: { text: UNREADABLE_CLOSE },
  [CloseCode.UNAUTHENTICATED]: { text: _("You are no longer logged in. Log in again, then start a new session."), action: LOG_IN },
  [CloseCode.RATE_LIMITED]: { text: TOO_FAST, action: RETRY },
  [CloseCode.UPSTREAM_FAILED]: { text: _("The connection to the model failed. Try again in a minute."), action: RETRY },
  [CloseCode.STORAGE_UNAVAILABLE]: { text: STORAGE_LOST, action: RETRY },
};

// The `reason` of `status ended`.
export const ENDS = {
  client_stop: { text: _("You stopped the session.") },
  client_disconnect: { text: _("The page lost its connection, so the session ended. Start again.") },
  upstream_unavailable: { text: MODEL_UNREACHABLE, action: RETRY },
  upstream_closed: { text: _("The model service ended the session. Start again to go on.") },
  upstream_error: { text: MODEL_LOST, action: RETRY },
  protocol_error: { text: UNREADABLE_CLOSE },
  duration_limit: { text: _("The session reached its maximum length. Start a new one to go on.") },
  idle_timeout: { text: _("The session ended because nothing was shared, said or typed for a while. Start again when you are ready.") },
  user_limit: { text: ANOTHER_TAB },
  worker_limit: { text: SERVER_FULL, action: RETRY },
  admin_ended: { text: _("An administrator ended this session.") },
  server_shutdown: { text: _("The server is restarting. Start again in a moment."), action: RETRY },
  worker_lost: { text: _("The server stopped unexpectedly, so the session ended. Start again."), action: RETRY },
  rate_limited: { text: TOO_FAST, action: RETRY },
  internal_error: { text: SERVER_ERROR, action: RETRY },
  storage_unavailable: { text: STORAGE_LOST, action: RETRY },
  budget_exhausted: { text: BUDGET },
};

const UNKNOWN_ERROR = { text: _("Something went wrong. Start again; if it happens again, tell an administrator."), action: RETRY };
const UNKNOWN_CLOSE = { text: _("The connection to the server closed unexpectedly. Try again."), action: RETRY };
const UNKNOWN_END = { text: _("The session ended. Start again to go on.") };

// The model service refuses a key it does not accept with a reason that names it.
const API_KEY_REASON = /api[ _-]?key/i;

// What to tell about an `error` message {code, upstream_reason?, ...}.
export function forError({ code, upstream_reason: upstreamReason }) {
  if (code === "model_refused" && API_KEY_REASON.test(upstreamReason || "")) {
    return { ...ERRORS.model_refused, text: API_KEY_REFUSED };
  }
  return Object.hasOwn(ERRORS, code) ? ERRORS[code] : UNKNOWN_ERROR;
}

// What to tell about a close code no error or status explained.
export function forClose(code) {
  return Object.hasOwn(CLOSES, code) ? CLOSES[code] : UNKNOWN_CLOSE;
}

// What to tell about `status ended` with `reason`.
export function forEnd(reason) {
  return Object.hasOwn(ENDS, reason) ? ENDS[reason] : UNKNOWN_END;
}

// After this error code the server ends the session (docs/protocol.md, "Errors").
export const isFatal = (code) => Boolean(ERRORS[code]?.fatal);
