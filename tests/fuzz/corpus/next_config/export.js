/** A static export: `kiln build` writes out/ as the site (no server). */
module.exports = {
  output: 'export',
};
