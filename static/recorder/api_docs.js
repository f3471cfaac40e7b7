// /api/v1/docs: start Swagger UI with the settings the server rendered as JSON data.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("swagger-settings").textContent);
  config.dom_id = "#swagger-ui";
  config.presets = [SwaggerUIBundle.presets.apis];
  SwaggerUIBundle(config);
})();
