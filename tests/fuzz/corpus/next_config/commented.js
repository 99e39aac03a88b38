/** @type {import('next').NextConfig} */
module.exports = {
  // output: 'export',   (a static export, disabled: this app is served by next start)
  /* output: "export" */
  env: { NOTE: "output: 'export' in a string is not an option" },
};
