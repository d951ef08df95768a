// An MCP server written with the official TypeScript SDK, for what the published servers do not show on demand:
// requests from the server that the client never offered to answer (sampling, elicitation, roots), and a long
// call that records whether the client's cancellation arrived. Needs AGENTKIT_NPM_DIR (tests/mcp_toolsets/npm).
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const npm = createRequire(path.join(process.env.AGENTKIT_NPM_DIR, "package.json"));
const { McpServer } = npm("@modelcontextprotocol/sdk/server/mcp.js");
const { StdioServerTransport } = npm("@modelcontextprotocol/sdk/server/stdio.js");
const types = npm("@modelcontextprotocol/sdk/types.js");
const { z } = npm("zod");

const server = new McpServer({ name: "ts-under-test", version: "1.0.0" });
const marker = process.env.MCP_TEST_MARKER;
const note = (line) => marker && fs.appendFileSync(marker, line + "\n");
note(`started ${process.pid}`);

const text = (t) => ({ content: [{ type: "text", text: t }] });

server.registerTool(
  "ask-model",
  { description: "Asks the client's model to write something (sampling), whatever the client declared." },
  async (extra) => {
    const request = {
      method: "sampling/createMessage",
      params: { messages: [{ role: "user", content: { type: "text", text: "say hi" } }], maxTokens: 10 },
    };
    const result = await extra.sendRequest(request, types.CreateMessageResultSchema);
    return text(`the model said: ${JSON.stringify(result)}`);
  },
);

server.registerTool(
  "ask-user",
  { description: "Asks the client's user for a value (elicitation), whatever the client declared." },
  async (extra) => {
    const request = {
      method: "elicitation/create",
      params: { message: "Your name?", requestedSchema: { type: "object", properties: { name: { type: "string" } } } },
    };
    const result = await extra.sendRequest(request, types.ElicitResultSchema);
    return text(`the user said: ${JSON.stringify(result)}`);
  },
);

server.registerTool(
  "list-roots",
  { description: "Asks the client for its roots, whatever the client declared." },
  async (extra) => {
    const result = await extra.sendRequest({ method: "roots/list" }, types.ListRootsResultSchema);
    return text(`roots: ${JSON.stringify(result)}`);
  },
);

server.registerTool(
  "wait",
  {
    description: "Waits, and notes in the marker file whether the client cancelled the call.",
    inputSchema: { seconds: z.number().describe("how long") },
    annotations: { readOnlyHint: true },
  },
  async ({ seconds }, extra) => {
    note(`waiting ${seconds}`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      extra.signal.addEventListener("abort", () => {
        note("cancelled");
        clearTimeout(timer);
        resolve();
      });
    });
    return text(`waited ${seconds} s`);
  },
);

// The schema shapes zod gives real TypeScript servers: a union (anyOf), nullable and optional values, an enum, a
// literal, nested objects, an array of objects, a string format, bounds, and a recursive type ($ref into $defs).
const Step = z.object({ title: z.string().describe("what to do"), done: z.boolean().optional() });
const Topic = z.object({
  name: z.string(),
  get subtopics() {
    return z.array(Topic).optional();
  },
});
server.registerTool(
  "plan",
  {
    description: "Makes a plan; echoes back what it was given, as JSON.",
    inputSchema: {
      kind: z.enum(["trip", "project"]).describe("what to plan"),
      when: z.union([z.string().describe("an ISO date"), z.number().describe("days from now")]),
      budget: z.number().min(0).nullable().optional(),
      steps: z.array(Step).describe("the steps, in order"),
      owner: z.object({ name: z.string(), email: z.string().email().optional() }),
      mode: z.literal("draft").optional(),
      topic: Topic.optional(),
    },
    annotations: { readOnlyHint: true },
  },
  async (args) => text(JSON.stringify(args)),
);

server.connect(new StdioServerTransport());
