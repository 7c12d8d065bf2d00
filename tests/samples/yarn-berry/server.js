// A Yarn 4 app (Plug'n'Play: no node_modules): `ms` resolves through .pnp.cjs.
const http = require("http");
const ms = require("ms");

http.createServer((req, res) => {
  res.end(`yarn berry app: ${ms(90000)} in ms is ${ms("1.5m")}\n`);
}).listen(process.env.PORT || 3000, "0.0.0.0");
