// Stands in for `vite build`: writes the site into dist/ (index.html and an asset).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const title = readFileSync("src/title.txt", "utf8").trim();
mkdirSync("dist/assets", { recursive: true });
writeFileSync("dist/index.html", `<!doctype html>\n<html><body><h1>${title}</h1><script src="/assets/app.js"></script></body></html>\n`);
writeFileSync("dist/assets/app.js", "console.log('hi');\n");
