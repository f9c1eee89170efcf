// Shared by the client tests: where Tether and the fake upstream are (run.py sets both), and the
// fake's scripting API over HTTP (tests/fakes/upstream.py).
import { randomUUID } from "node:crypto";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the client tests with \`make test-clients\``);
  return value;
}

export const TETHER_URL = required("TETHER_URL");
const FAKE_UPSTREAM_URL = required("FAKE_UPSTREAM_URL");

/** A model name no other test uses, so that scripts and recorded requests stay apart. */
export function uniqueModel(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Script how the fake answers `model`: reply, tool_calls, tool_calls_times, chunks, ... */
export async function script(model, knobs = {}) {
  const answer = await fetch(`${FAKE_UPSTREAM_URL}/_fake/script`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, ...knobs }),
  });
  if (!answer.ok) throw new Error(`scripting the fake failed: ${await answer.text()}`);
}

/** The chat-completions bodies the fake received for `model`, oldest first. */
export async function received(model) {
  const answer = await fetch(`${FAKE_UPSTREAM_URL}/_fake/requests?model=${encodeURIComponent(model)}`);
  return (await answer.json()).data;
}

/** A chat message's text, whether its content is a string or a list of parts. */
export function text(message) {
  const { content } = message;
  return typeof content === "string" ? content : (content ?? []).map((p) => p.text ?? "").join("");
}

/** [role, text] of each message: what a model was shown, in a form easy to compare. */
export function transcript(body) {
  return body.messages.map((m) => [m.role, text(m)]);
}
