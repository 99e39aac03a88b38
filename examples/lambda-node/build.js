// Build step: checks that the Node running the build satisfies engines.node
// (with semver, a devDependency: present for the build, absent from the zip)
// and records it in build-info.json, which the handler reports.
const fs = require("fs");
const semver = require("semver");
const pkg = require("./package.json");

if (!semver.satisfies(process.version, pkg.engines.node)) {
  console.error(`node ${process.version} does not satisfy engines.node ${pkg.engines.node}`);
  process.exit(1);
}
fs.writeFileSync("build-info.json", JSON.stringify({ node: process.version }) + "\n");
console.log(`build-info.json: built with node ${process.version}`);
