// Parse an AsyncAPI document with the official parser (@asyncapi/parser) and print, as one
// JSON object, its diagnostics and what the parser understood: each operation's id, action,
// channel address and message ids, and each channel's address and parameters.
// Usage: node asyncapi_parse.cjs DOCUMENT NODE_PREFIX  (NODE_PREFIX holds node_modules)
const path = require('path');
const [doc, prefix] = process.argv.slice(2);
const { Parser, fromFile } = require(path.resolve(prefix, 'node_modules', '@asyncapi', 'parser'));

(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), doc).parse();
  const out = {
    diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code,
                                           path: d.path, message: d.message })),
    parsed: Boolean(document), operations: {}, channels: {},
  };
  if (document) {
    for (const op of document.operations().all()) {
      out.operations[op.id()] = {
        action: op.action(),
        channels: op.channels().all().map((c) => c.address()),
        messages: op.messages().all().map((m) => m.id()),
      };
    }
    for (const ch of document.channels().all()) {
      out.channels[ch.id()] = { address: ch.address(),
                                parameters: ch.parameters().all().map((p) => p.id()) };
    }
  }
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(String(err)); process.exit(1); });
