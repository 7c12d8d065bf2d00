// package.json checks for the nodejs buildpack (runs in the build container).
//   check-package.js FILE              valid JSON object? else print the failing line and exit 1
//   check-package.js --manager FILE    "MANAGER SPEC LOCKFILE": yarn, yarn-berry, pnpm or npm (packageManager's
//                                      name, else the lockfile's), the npm package that provides it
//                                      (packageManager's version, else a default) and the lockfile or "-"
//   check-package.js --yarn-path FILE  .yarnrc.yml's yarnPath when that file is in the repository
//   check-package.js --explain-web FILE  say what the default web process is, or that a Procfile is needed
//   check-package.js --static-output FILE  the folder to serve when the build's output is a static site
//                                      (Vite, Create React App, next export), else nothing
"use strict";
const fs = require("fs");
const args = process.argv.slice(2);
const mode = args[0].startsWith("--") ? args.shift() : "--check";
const file = args[0];
const text = fs.readFileSync(file, "utf8");

function lineOf(pos) {
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  return [line, text.split("\n")[line - 1]];
}

let data;
try {
  data = JSON.parse(text);
} catch (e) {
  const m = /position (\d+)/.exec(e.message);
  const pos = m ? Number(m[1]) : text.length;
  const [line, content] = lineOf(pos);
  console.log(` !     ${file} line ${line}: ${e.message}`);
  console.log(` !     ${line} | ${content === undefined ? "" : content}`);
  process.exit(1);
}
if (mode === "--check") {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    console.log(` !     ${file} must be a JSON object ({"name": ..., "scripts": {...}}).`);
    process.exit(1);
  }
} else if (mode === "--manager") {
  console.log(packageManager(data).join(" "));
} else if (mode === "--yarn-path") {
  console.log(yarnPath());
} else if (mode === "--static-output") {
  console.log(staticOutput(data));
} else if (mode === "--explain-web") {
  if (fs.existsSync("Procfile") || process.env.DOCKYARD_WEB_DECLARED) process.exit(0);
  const start = data.scripts && data.scripts.start;
  if (start) console.log(`-----> Default web process: npm start (${start})`);
  else if (fs.existsSync("server.js")) console.log("-----> Default web process: npm start (node server.js)");
  else console.log("-----> No start script in package.json and no server.js: add `\"start\"` to scripts or a Procfile.");
}

// A development server is not a production start command: CRA's `start` is one, and Vite's and
// Next's output has no server of its own once exported.
function isDevServer(start) {
  return /^(react-scripts start|vite( dev| serve| preview)?|ng serve|vue-cli-service serve|parcel( serve)?|next dev|gatsby develop|astro dev|react-app-rewired start|craco start)(\s|$)/.test(start.trim());
}

function staticJsonRoot() {
  if (!fs.existsSync("static.json")) return "";
  let conf;
  try {
    conf = JSON.parse(fs.readFileSync("static.json", "utf8"));
  } catch (e) {
    console.error(` !     static.json is not valid JSON (${e.message}): fix it.`);
    process.exit(1);
  }
  return String((conf && conf.root) || "public_html/");
}

function staticOutput(pkg) {
  if (fs.existsSync("Procfile") || process.env.DOCKYARD_WEB_DECLARED) return "";
  const scripts = pkg.scripts || {};
  const start = String(scripts.start || "");
  let root = staticJsonRoot();
  if (!root && (scripts.build || scripts["heroku-postbuild"])) {
    root = ["dist", "build", "out"].find((d) => fs.existsSync(`${d}/index.html`)) || "";
  }
  if (!root) return "";
  root = root.replace(/^\.\//, "").replace(/\/+$/, "") || ".";
  if (root.split("/").includes("..") || root.startsWith("/") || !fs.existsSync(root)) return "";
  if (start && !isDevServer(start) && !(start.startsWith("next start") && root === "out")) return "";
  if (!start && fs.existsSync("server.js")) return "";
  return root;
}

// Yarn 2+ is published on npm as @yarnpkg/cli-dist (`yarn` there is classic yarn 1).
function packageManager(pkg) {
  const lockfiles = { yarn: "yarn.lock", "yarn-berry": "yarn.lock", pnpm: "pnpm-lock.yaml" };
  const m = /^(yarn|pnpm|npm)@(\d+)\.(\d+)\.(\d+)/.exec(String(pkg.packageManager || ""));
  let manager;
  let version = "";
  if (m) {
    manager = m[1] === "yarn" && m[2] !== "1" ? "yarn-berry" : m[1];
    version = `${m[2]}.${m[3]}.${m[4]}`;
  } else if (fs.existsSync("yarn.lock")) {
    const berry = fs.existsSync(".yarnrc.yml") || /^__metadata:/m.test(fs.readFileSync("yarn.lock", "utf8"));
    manager = berry ? "yarn-berry" : "yarn";
  } else if (fs.existsSync("pnpm-lock.yaml")) {
    manager = "pnpm";
  } else {
    manager = "npm";
  }
  const npmLock = ["package-lock.json", "npm-shrinkwrap.json"].find((f) => fs.existsSync(f));
  const lock = manager === "npm" ? npmLock : (fs.existsSync(lockfiles[manager]) ? lockfiles[manager] : "");
  const spec = {
    yarn: `yarn@${version || "1"}`,
    "yarn-berry": `@yarnpkg/cli-dist@${version || "4"}`,
    pnpm: `pnpm@${version || "latest"}`,
    npm: version ? `npm@${version}` : "npm",
  }[manager];
  return [manager, spec, lock || "-"];
}

function yarnPath() {
  if (!fs.existsSync(".yarnrc.yml")) return "";
  const m = /^yarnPath:\s*["']?([^"'\s#]+)/m.exec(fs.readFileSync(".yarnrc.yml", "utf8"));
  if (!m || m[1].startsWith("/") || m[1].split("/").includes("..") || !fs.existsSync(m[1])) return "";
  return m[1];
}
