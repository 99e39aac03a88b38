/** A server app: `kiln build` makes an image running `next start`.
 * With output: 'export' it would be a static site instead (see ../next-static). */
module.exports = {
  poweredByHeader: false,
};
