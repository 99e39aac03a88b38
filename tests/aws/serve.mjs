// Starts fauxqs (S3 + SQS + SNS emulator) on 127.0.0.1 only (its own CLI
// listens on every interface). Usage: node serve.mjs FAUXQS_DIR PORT
import path from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
const port = parseInt(process.argv[3] ?? "4566", 10);
const { buildApp } = await import(
  pathToFileURL(path.join(dir, "node_modules/fauxqs/dist/app.js")).href
);
const app = buildApp({ logger: false, host: "localhost" });
await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`fauxqs listening on 127.0.0.1:${port}\n`);
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => app.close().then(() => process.exit(0)));
