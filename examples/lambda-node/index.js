// Lambda handler: returns how long ago the event's timestamp was, in words.
const ms = require("ms");

exports.handler = async (event) => {
  const ago = Date.now() - Number((event && event.timestamp) || Date.now());
  return { statusCode: 200, body: JSON.stringify({ message: "hello from kiln lambda-node", ago: ms(ago) }) };
};
