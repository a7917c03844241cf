// Renders the service's own OpenAPI document with the vendored Swagger UI.
window.SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // No validator badge: it would call a server of another origin.
  validatorUrl: null,
});
