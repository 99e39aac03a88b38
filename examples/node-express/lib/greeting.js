exports.greeting = () => `hello from kiln node-express (node ${process.version})\n`;
