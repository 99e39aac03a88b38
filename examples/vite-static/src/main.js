document.querySelector("#app").dataset.builtBy = "kiln";
