/** %datasets: the loaded datasets. */
import { Magic } from "../registry";
import { showDatasets } from "./workflow-common";

export const datasets: Magic = {
  name: "datasets",
  kind: "line",
  summary: "list the loaded datasets with their shapes and sizes",
  help: "",
  args: {},
  async run(ctx) {
    showDatasets(ctx);
    return {};
  },
};
