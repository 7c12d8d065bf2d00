// Node 22 (engines.node), installed with yarn (yarn.lock), built by heroku-postbuild.
const http = require("http");
const fs = require("fs");
const built = fs.readFileSync(__dirname + "/built.txt", "utf8");
http.createServer((req, res) => {
  res.end(`node ${process.version} ${built}\n`);
}).listen(process.env.PORT || 5000);
