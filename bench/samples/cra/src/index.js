import React from "react";
import ReactDOM from "react-dom/client";

function App() {
  return <h1>hello from cra</h1>;
}

ReactDOM.createRoot(document.getElementById("root")).render(<App />);
