// Codex CLI (@openai/codex, pinned in package.json; its native binary comes in the platform
// package npm picks for this machine) pointed at Tether with `wire_api = "responses"`, as the
// README's "Codex CLI" section configures it, and the fake upstream as its model (issue 18).
// Each test has its own CODEX_HOME and working directory, made in a temporary directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { TETHER_URL, received, script, text, uniqueModel } from "./fake.mjs";

const CODEX = fileURLToPath(new URL("./node_modules/.bin/codex", import.meta.url));
// A run of Codex takes a second or two here; a stuck one is stopped rather than waited for.
const RUN_SECONDS = 60;

/** A CODEX_HOME whose config.toml points Codex at Tether, and a working directory. */
async function setUp(t, model) {
  const root = await mkdtemp(join(tmpdir(), "tether-codex-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const config = `
model = "${model}"
model_provider = "tether"
check_for_update_on_startup = false

[model_providers.tether]
name = "Tether"
base_url = "${TETHER_URL}/v1"
wire_api = "responses"
# A test that fails should fail at once, not retry.
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
`;
  await writeFile(join(root, "config.toml"), config);
  return { home: root, cwd: await mkdtemp(join(root, "work-")) };
}

/** `codex exec ARGS`: its exit code, stdout, stderr and last message. */
function codex({ home, cwd }, args) {
  const last = join(home, "last-message.txt");
  const argv = ["exec", "--strict-config", "--skip-git-repo-check", "-o", last, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(CODEX, argv, {
      cwd,
      env: { ...process.env, CODEX_HOME: home, OPENAI_API_KEY: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_SECONDS * 1000);
    child.on("error", reject);
    child.on("close", async (code) => {
      clearTimeout(timer);
      const message = await readFile(last, "utf8").catch(() => null);
      resolve({ code, stdout, stderr, message });
    });
  });
}

function succeeded(run) {
  assert.equal(run.code, 0, `codex exec failed:\n${run.stdout}\n${run.stderr}`);
}

test("a plain codex exec turn", async (t) => {
  const model = uniqueModel("codex-plain");
  await script(model, { reply: "Hello from Tether.", reasoning_content: "A greeting." });
  const run = await codex(await setUp(t, model), ["say hello"]);
  succeeded(run);
  assert.equal(run.message.trim(), "Hello from Tether.");
  const [sent] = await received(model);
  // Codex's developer and user messages, its function and namespace tools; web_search left out.
  assert.deepEqual(
    sent.messages.map((m) => m.role),
    ["system", "system", "user", "user"],
  );
  assert.equal(text(sent.messages.at(-1)), "say hello");
  const names = sent.tools.map((tool) => tool.function.name);
  assert.ok(names.includes("exec_command"), names);
  assert.ok(names.includes("multi_agent_v1__spawn_agent"), names);
  assert.equal(sent.client_metadata, undefined);
});

test("a tool round trip through exec_command", async (t) => {
  const model = uniqueModel("codex-tool");
  const cmd = "echo tether-codex-ok";
  await script(model, {
    reasoning_content: "I will run the check.",
    tool_calls: [{ name: "exec_command", arguments: JSON.stringify({ cmd }) }],
    tool_calls_times: 1,
    reply_with_tool_output: true,
  });
  // Codex's sandbox may not work in a container: no sandbox, in a directory of the test's own.
  const run = await codex(await setUp(t, model), [
    "--json",
    "-s",
    "danger-full-access",
    "run the check",
  ]);
  succeeded(run);
  const items = run.stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line))
    .filter((event) => event.type === "item.completed")
    .map((event) => event.item);
  const ran = items.find((item) => item.type === "command_execution");
  assert.ok(ran, JSON.stringify(items));
  assert.match(ran.aggregated_output, /tether-codex-ok/);
  assert.match(run.message, /The tool returned: .*tether-codex-ok/s);
  const [, second] = await received(model);
  const [call, output] = second.messages.slice(-2);
  assert.equal(call.tool_calls[0].function.name, "exec_command");
  // Codex sent the call's reasoning back encrypted (store=false); Tether opened it.
  assert.equal(call.reasoning_content, "I will run the check.");
  assert.equal(output.role, "tool");
  assert.equal(output.tool_call_id, call.tool_calls[0].id);
  assert.match(output.content, /tether-codex-ok/);
});

test("a second turn sends back the first turn's encrypted reasoning", async (t) => {
  const model = uniqueModel("codex-turns");
  await script(model, { reply: "Noted.", reasoning_content: "Thinking about turn one." });
  const where = await setUp(t, model);
  succeeded(await codex(where, ["remember the number 7"]));
  const second = await codex(where, ["resume", "--last", "what was the number?"]);
  succeeded(second);
  const [, sent] = await received(model);
  const answer = sent.messages.find((m) => m.role === "assistant");
  assert.deepEqual(answer, { role: "assistant", content: "Noted.", reasoning_content: "Thinking about turn one." });
  assert.equal(text(sent.messages.at(-1)), "what was the number?");
});
