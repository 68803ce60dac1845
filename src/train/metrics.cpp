// metrics.jsonl and the loss-curve PNG. See train.h.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "train/train.h"

using json = nlohmann::json;

namespace todae {

namespace {

// Complete lines only: a line without its '\n' is the torn tail of a crashed write.
std::vector<std::string_view> complete_lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1)
    out.push_back(text.substr(start, nl - start));
  return out;
}

bool row_step(const json& row, int64_t* step) {
  if (!row.is_object()) return false;
  auto it = row.find("step");
  if (it == row.end() || !it->is_number()) return false;
  *step = it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
  return true;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& p, int64_t resume_step) : path(p) {
  if (resume_step >= 0 && file_exists(path)) {
    std::string text = read_file(path);
    std::string kept;
    for (std::string_view line : complete_lines(text)) {
      json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_discarded()) continue;  // garbage from a crash in the middle of the file
      int64_t step;
      if (row_step(row, &step) && step > resume_step) continue;
      kept.append(line);
      kept.push_back('\n');
    }
    write_file_atomic(path, kept);
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  } else {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  }
  if (fd < 0) fail("cannot write ", path, ": ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd >= 0) ::close(fd);
}

void MetricsLog::write(const json& row) {
  // NaN and inf become null (JSON has no spelling for them); invalid UTF-8 is replaced.
  std::string line = row.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", path, ": ", std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::vector<json> read_metrics(const std::string& path) {
  std::string text = read_file(path);
  std::vector<json> rows;
  for (std::string_view line : complete_lines(text)) {
    json row = json::parse(line, nullptr, false);
    if (!row.is_discarded() && row.is_object()) rows.push_back(std::move(row));
  }
  return rows;
}

namespace {

std::string first_line(const std::string& s) {
  size_t start = s.find_first_not_of(" \n");
  if (start == std::string::npos) return "";
  size_t end = s.find('\n', start);
  return s.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

void plot_loss(const std::string& metrics_path, const std::string& png_path) {
  std::string train, val;
  size_t n_train = 0, n_val = 0;
  for (const json& row : read_metrics(metrics_path)) {
    int64_t step;
    if (!row_step(row, &step)) continue;
    auto num = [&](const char* key, double* out) {
      auto it = row.find(key);
      if (it == row.end() || !it->is_number()) return false;
      *out = it->get<double>();
      return std::isfinite(*out);
    };
    double x;
    if (num("loss", &x)) train += cat(step, " ", x, "\n"), ++n_train;
    if (num("val_loss", &x)) val += cat(step, " ", x, "\n"), ++n_val;
  }
  if (n_train + n_val == 0) fail(metrics_path, ": no rows with a numeric \"loss\" or \"val_loss\" to plot");

  std::string base = cat(png_path, ".tmp.", ::getpid());
  std::string train_dat = base + ".train.dat", val_dat = base + ".val.dat", script = base + ".gp",
              out_png = base + ".png";
  auto cleanup = [&] {
    for (const auto& f : {train_dat, val_dat, script, out_png}) ::unlink(f.c_str());
  };
  try {
    write_file_atomic(train_dat, train);
    write_file_atomic(val_dat, val);
    std::string err;
    int status = -1;
    // pngcairo draws smoother lines; plain png (libgd) is the fallback where cairo is missing.
    for (const char* term : {"pngcairo size 960,540", "png size 960,540"}) {
      std::string plots;
      if (n_train) plots += cat(gnuplot_quote(train_dat), " using 1:2 with lines lw 2 title 'train loss'");
      if (n_val)
        plots += cat(n_train ? ", " : "", gnuplot_quote(val_dat), " using 1:2 with linespoints pt 7 title 'val loss'");
      std::string gp = cat("set terminal ", term, "\n", "set output ", gnuplot_quote(out_png), "\n",
                           "set title 'todae: loss'\nset xlabel 'step'\nset ylabel 'loss'\nset grid\n",
                           "set key top right\nplot ", plots, "\n");
      write_file_atomic(script, gp);
      status = run_gnuplot(script, &err);
      if (status == 0 || status == -1) break;
    }
    if (status != 0) fail("cannot plot ", png_path, ": ", status == -1 ? err : cat("gnuplot: ", first_line(err)));
    if (!file_exists(out_png) || file_size(out_png) == 0) fail("cannot plot ", png_path, ": gnuplot wrote nothing");
    if (::rename(out_png.c_str(), png_path.c_str()) != 0) fail("cannot write ", png_path, ": ", std::strerror(errno));
  } catch (...) {
    cleanup();
    throw;
  }
  cleanup();
}

}  // namespace todae
