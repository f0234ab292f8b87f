# mclust's side of benchmarks/mclust.py: one BIC table, its log-likelihoods and its time.
#
#   Rscript benchmarks/mclust.R data.csv out.csv G_max MODELS [wall|cpu] [prior]
#
# data.csv: the rows, a header line and no row names. MODELS: comma-separated mclust
# names (EII,VII,...,VVV). Writes out.csv with one row per (model, G): the log-likelihood
# (from the BIC: BIC = 2 logL - npar log n, npar = nMclustParams), mclust's BIC, and the
# seconds of the fits alone, by the wall clock or the process's CPU time (mclustBIC, which grows the hc tree once and runs every
# model and G; reading the data and loading mclust are not timed). Unfitted cells
# (singular covariance) are NA.
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1]))
G <- seq_len(as.integer(args[3]))
models <- strsplit(args[4], ",")[[1]]
clock <- if (length(args) >= 5) args[5] else "wall"
# "prior": every fit with mclust's default conjugate prior (priorControl())
prior <- if (length(args) >= 6 && args[6] == "prior") priorControl() else NULL
# wall: elapsed seconds; cpu: this process's user + system seconds (steadier on a shared
# machine: another process's work does not count)
now <- function() {
  t <- proc.time()
  if (clock == "cpu") t[["user.self"]] + t[["sys.self"]] else t[["elapsed"]]
}
n <- nrow(X)
d <- ncol(X)
t0 <- now()
b <- mclustBIC(X, G = G, modelNames = models, prior = prior, verbose = FALSE)
seconds <- now() - t0
rows <- list()
for (m in models) for (g in G) {
  # with a prior mclust leaves out the models it has none for (VEE, EVE, VVE, EVV)
  bic <- if (m %in% colnames(b)) b[as.character(g), m] else NA
  npar <- nMclustParams(m, d, g)
  rows[[length(rows) + 1]] <- data.frame(model = m, G = g, bic = bic,
                                         loglik = (bic + npar * log(n)) / 2,
                                         seconds = seconds)
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
cat(sprintf("mclust %s, %s\n", packageVersion("mclust"), R.version.string))
