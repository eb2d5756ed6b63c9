# The Baby study's rows at the selected point (issue 22): row name -> the `crane train` settings
# that row changes. Sourced by queue-worker.sh (train) and report-rows.sh (which prefixes each
# `--set` with `crane:` for `crane compare`).
declare -A A=(
  [selected]=""
  [switch-dropedge-off]="--set model.drop_edge=off"
  [switch-dropedge-rescaled]="--set model.drop_edge=bernoulli_rescaled"
  [ablation-wo-cl]="--set model.contrastive=false"
  [ablation-wo-item-graph]="--set model.item_graph=false"
  [ablation-wo-rca]="--set model.rounds=1"
  [ablation-wo-dual-fusion]="--set model.dual_fusion=false"
  [switch-refresh-every-30-steps]="--set refresh={every_n_steps=30}"
  [ablation-wo-attention]="--set model.fusion=concat"
  [ablation-wo-gcn]="--set model.ui_layers=0 --set model.ii_layers=0"
  [sweep-k-5]="--set model.knn_k=5"
  [sweep-lii-2]="--set model.ii_layers=2"
  [sweep-lui-3]="--set model.ui_layers=3"
  [sweep-r-2]="--set model.rounds=2"
)
