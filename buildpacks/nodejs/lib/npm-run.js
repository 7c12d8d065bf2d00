// The run-time `npm` of the slug: runs package.json scripts like npm does (pre<name>, <name>,
// post<name>; node_modules/.bin on PATH; `start` defaults to `node server.js`). Other npm
// commands need the build: they are not available in a running app.
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const args = process.argv.slice(2);
let name = args[0];
if (name === "run" || name === "run-script") name = args[1];
else if (!["start", "test", "stop", "restart"].includes(name)) {
  console.error(`npm ${args.join(" ")}: only \`npm start\` and \`npm run <script>\` work in a running app.`);
  process.exit(1);
}
const extra = args.slice(args[0] === "run" || args[0] === "run-script" ? 2 : 1).filter((a) => a !== "--");
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
const scripts = pkg.scripts || {};
if (!scripts[name] && name === "start" && fs.existsSync("server.js")) scripts.start = "node server.js";
if (!scripts[name]) {
  console.error(`npm: package.json has no "${name}" script.`);
  process.exit(1);
}
const env = { ...process.env, PATH: `${process.cwd()}/node_modules/.bin:${process.env.PATH}`,
  npm_lifecycle_event: name, npm_package_name: pkg.name || "", npm_package_version: pkg.version || "" };
const steps = [`pre${name}`, name, `post${name}`].filter((s) => scripts[s]);
let child = null;
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => { if (child) child.kill(sig); else process.exit(143); });
}
function next(i) {
  if (i >= steps.length) process.exit(0);
  const step = steps[i];
  const cmd = step === name && extra.length ? `${scripts[step]} ${extra.join(" ")}` : scripts[step];
  child = spawn("/bin/sh", ["-c", cmd], { stdio: "inherit", env });
  child.on("exit", (code, signal) => {
    child = null;
    if (code !== 0) process.exit(code === null ? 128 + 15 : code);
    next(i + 1);
  });
}
next(0);
