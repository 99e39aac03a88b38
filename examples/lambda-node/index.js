// Lambda handler: returns how long ago the event's timestamp was, in words,
// and the Node version the build step ran on (build-info.json).
const ms = require("ms");
const buildInfo = require("./build-info.json");

exports.handler = async (event) => {
  const ago = Date.now() - Number((event && event.timestamp) || Date.now());
  const body = { message: "hello from kiln lambda-node", ago: ms(ago), builtWith: buildInfo.node };
  return { statusCode: 200, body: JSON.stringify(body) };
};
