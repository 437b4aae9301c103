// Starts GraphiQL on /graphql. A file of its own, not an inline script, so
// that the page's Content-Security-Policy can allow scripts from 'self' only.
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: new URL("/graphql", window.location.origin).toString(),
    }),
    defaultEditorToolsVisibility: true,
  }),
);
