// The Node.js sample app: no dependencies, listens on $PORT.
const http = require("http");
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`hello from node ${process.version}\n`);
}).listen(Number(process.env.PORT), "0.0.0.0");
