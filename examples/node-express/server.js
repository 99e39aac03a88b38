// An Express server answering on $PORT (default 8080).
const express = require("express");
const { greeting } = require("./lib/greeting");

const app = express();
app.get("/", (req, res) => res.type("text/plain").send(greeting()));
const port = Number(process.env.PORT || 8080);
app.listen(port, () => console.log(`listening on :${port}`));
