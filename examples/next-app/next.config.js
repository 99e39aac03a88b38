/** A static export: `kiln build` writes out/ as the site. Remove `output` for a server image. */
module.exports = {
  output: 'export',
};
