// The live page: a background response's events, drawn as they arrive, read from the API's
// own stream (GET /v1/responses/{id}?stream=true&starting_after=N; the dashboard's session
// cookie is accepted there for the selected project). What was drawn and the last sequence
// number are kept in sessionStorage, so a reload resumes after that event instead of
// starting over. EventSource reconnects by itself with the URL it began with, which would
// replay events: on an error this closes it and opens a new one after the last event seen.
(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const id = root.dataset.responseId;
  const key = `tether-live:${id}`;
  const statusEl = document.getElementById("live-status");
  const seqEl = document.getElementById("live-seq");
  const ENDS = ["response.completed", "response.failed", "response.incomplete", "error"];
  let state = JSON.parse(sessionStorage.getItem(key) || "null") || { seq: -1, items: [], status: null };
  let source = null;
  let over = false;

  function draw() {
    root.replaceChildren(...state.items.map((item, n) => {
      const box = document.createElement(item.kind === "reasoning" ? "details" : "div");
      box.className = `bubble ${item.kind === "message" ? "role-assistant" : item.kind}`;
      box.id = `live-item-${n}`;
      const who = document.createElement(item.kind === "reasoning" ? "summary" : "div");
      who.className = "who";
      who.textContent = item.label;
      const text = document.createElement(item.kind === "message" ? "div" : "pre");
      text.className = "text";
      text.textContent = item.text;
      box.append(who, text);
      return box;
    }));
    seqEl.textContent = state.seq < 0 ? "none" : String(state.seq);
    if (state.status) setStatus(state.status);
  }

  function setStatus(status) {
    statusEl.textContent = status;
    statusEl.className = `status status-${status}`;
  }

  function apply(event) {
    const n = event.output_index;
    if (event.type === "response.output_item.added") {
      const kinds = { message: "message", reasoning: "reasoning", function_call: "tool-call" };
      const kind = kinds[event.item.type] || "other";
      const label = kind === "tool-call" ? `tool call ${event.item.name || ""}` : (kind === "message" ? "assistant" : event.item.type);
      state.items[n] = { kind, label, text: "" };
    } else if (event.type.endsWith(".delta") && state.items[n] && typeof event.delta === "string") {
      state.items[n].text += event.delta;
    } else if (event.response && event.response.status) {
      state.status = event.response.status;
    }
    if (event.type === "error") state.status = "failed";
  }

  function save() { sessionStorage.setItem(key, JSON.stringify(state)); }

  function open() {
    source = new EventSource(`/v1/responses/${encodeURIComponent(id)}?stream=true&starting_after=${state.seq}`);
    const handle = (message) => {
      const event = JSON.parse(message.data);
      if (typeof event.sequence_number === "number" && event.sequence_number <= state.seq) return;
      apply(event);
      if (typeof event.sequence_number === "number") state.seq = event.sequence_number;
      save();
      draw();
      if (ENDS.includes(event.type)) finish();
    };
    // Named events (`event: response.output_text.delta`) reach only listeners of their name.
    const types = ["response.created", "response.queued", "response.in_progress",
      "response.output_item.added", "response.output_item.done", "response.content_part.added",
      "response.content_part.done", "response.output_text.delta", "response.output_text.done",
      "response.refusal.delta", "response.reasoning_text.delta", "response.reasoning_summary_text.delta",
      "response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
      "response.reasoning_text.done", "response.reasoning_summary_text.done", "response.refusal.done",
      "response.function_call_arguments.delta", "response.function_call_arguments.done", ...ENDS];
    types.forEach((type) => source.addEventListener(type, handle));
    source.onerror = () => {
      source.close();
      if (!over) settle();
    };
  }

  // The stream ended without a closing event (a cancelled response has none) or dropped:
  // ask the response how it stands, and follow on only while it runs.
  async function settle() {
    try {
      const answer = await fetch(`/v1/responses/${encodeURIComponent(id)}`, { credentials: "same-origin" });
      if (answer.ok) {
        const body = await answer.json();
        if (!["queued", "in_progress"].includes(body.status)) {
          state.status = body.status;
          save();
          draw();
          finish();
          return;
        }
      }
    } catch (e) { /* offline for a moment: try again below */ }
    setTimeout(open, 1000);
  }

  function finish() {
    over = true;
    if (source) source.close();
    root.dataset.done = "true";
  }

  draw();
  const ENDED = ["completed", "failed", "incomplete", "cancelled"];
  if (ENDED.includes(state.status)) finish();
  else open();
})();
