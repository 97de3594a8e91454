// Multi-page TIFF stacks through libtiff: pages are z, strips or tiles are the chunks.
#include <fmt/format.h>
#include <tiffio.h>

#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>

#include "data/file_io.hpp"
#include "data/formats.hpp"
#include "data/tiff_meta.hpp"

namespace vx::data {
namespace {

// libtiff reports through a process-wide handler; keep the last message per thread so
// errors can name it. (libtiff's handler is its own global, not ours.)
thread_local std::string g_tiff_message;

void tiff_handler(const char* module, const char* fmt_str, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt_str, ap);
  g_tiff_message = module ? fmt::format("{}: {}", module, buf) : std::string(buf);
}

void install_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(tiff_handler);
    TIFFSetWarningHandler(nullptr);
  });
}

struct TiffCloser {
  void operator()(TIFF* t) const {
    if (t) TIFFClose(t);
  }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

struct PageFormat {
  std::uint32_t width = 0, height = 0;
  std::uint16_t bps = 0, spp = 1, sample_format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
  bool tiled = false;
  std::uint32_t tile_w = 0, tile_h = 0, rows_per_strip = 0;
  std::uint16_t compression = COMPRESSION_NONE;
  bool operator==(const PageFormat&) const = default;
};

PageFormat read_format(TIFF* t) {
  PageFormat f;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &f.width);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &f.height);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &f.bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &f.spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &f.sample_format);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &f.planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &f.compression);
  f.tiled = TIFFIsTiled(t) != 0;
  if (f.tiled) {
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &f.tile_w);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &f.tile_h);
  } else {
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &f.rows_per_strip);
    if (f.rows_per_strip == 0 || f.rows_per_strip > f.height) f.rows_per_strip = f.height;
  }
  return f;
}

class TiffSource final : public VolumeSource {
 public:
  // `lead`: per axis before y and x, the pages one step along it advances, or -1 for the
  // axis of a pixel's samples.
  TiffSource(VolumeInfo info, std::string path, std::vector<toff_t> pages, PageFormat fmt_,
             std::vector<std::int64_t> lead)
      : info_(std::move(info)),
        path_(std::move(path)),
        pages_(std::move(pages)),
        fmt_(fmt_),
        lead_(std::move(lead)) {}

  const VolumeInfo& info() const override { return info_; }

  Result<ReadResult> read_chunk(int level, const Index& index,
                                std::span<std::byte> out) const override {
    if (level != 0)
      return fail(ErrorCode::kInvalidArgument, "{}: has one level, asked for {}", path_, level);
    const auto& lv = info_.levels[0];
    const int nd = lv.ndim();
    const auto grid = lv.grid();
    for (int d = 0; d < nd; ++d)
      if (index[std::size_t(d)] < 0 || index[std::size_t(d)] >= grid[std::size_t(d)])
        return fail(ErrorCode::kInvalidArgument, "{}: chunk index out of range", path_);
    // Leading axes: a pixel's samples, or steps through the pages (z, channels, time).
    std::uint16_t sample = 0;
    std::size_t page = 0;
    for (std::size_t d = 0; d < lead_.size(); ++d) {
      if (lead_[d] < 0)
        sample = std::uint16_t(index[d]);
      else
        page += std::size_t(index[d] * lead_[d]);
    }
    if (page >= pages_.size())
      return fail(ErrorCode::kInvalidArgument, "{}: page {} out of range", path_, page);
    const auto iy = index[std::size_t(nd - 2)], ix = index[std::size_t(nd - 1)];
    VX_ASSIGN(auto handle, acquire());
    TIFF* t = handle.get();
    const std::string where = fmt::format("{} page {}", path_, page);
    if (!TIFFSetSubDirectory(t, pages_[page]))
      return fail(ErrorCode::kCorrupt, "{}: cannot read the page directory: {}", where,
                  g_tiff_message);
    const std::size_t item = dtype_size(info_.dtype);
    // Interleaved samples (RGB...) are read whole and this chunk's sample taken out of them;
    // separate planes are read directly.
    const std::size_t spp = fmt_.spp;
    const bool interleaved = spp > 1 && fmt_.planar == PLANARCONFIG_CONTIG;
    const std::uint16_t plane = interleaved ? 0 : sample;
    auto take = [&](std::span<const std::byte> from, std::span<std::byte> to) {
      for (std::size_t k = 0; k < to.size() / item; ++k)
        std::memcpy(to.data() + k * item, from.data() + (k * spp + sample) * item, item);
    };
    std::vector<std::byte> scratch;
    std::uint64_t read = 0;
    if (fmt_.tiled) {
      const auto tile = TIFFComputeTile(t, std::uint32_t(ix * fmt_.tile_w),
                                        std::uint32_t(iy * fmt_.tile_h), 0, plane);
      std::span<std::byte> dst = out;
      if (interleaved) {
        scratch.resize(out.size() * spp);
        dst = scratch;
      }
      const auto n = TIFFReadEncodedTile(t, tile, dst.data(), tmsize_t(dst.size()));
      if (n < 0) return fail(ErrorCode::kCorrupt, "{} tile {}: {}", where, tile, g_tiff_message);
      if (interleaved) take(scratch, out);
      read = std::uint64_t(n);
    } else {
      // A chunk is a run of whole strips: rows [y0, y1) of the full width.
      const auto chunk_rows = std::uint32_t(lv.chunks[std::size_t(nd - 2)]);
      const auto y0 = std::uint32_t(iy) * chunk_rows;
      const auto y1 = std::min<std::uint32_t>(y0 + chunk_rows, fmt_.height);
      const std::size_t row_bytes = std::size_t(fmt_.width) * item;
      for (std::uint32_t y = y0; y < y1; y += fmt_.rows_per_strip) {
        const auto strip = TIFFComputeStrip(t, y, plane);
        const auto rows = std::min(fmt_.rows_per_strip, fmt_.height - y);
        auto dst = out.subspan(std::size_t(y - y0) * row_bytes, std::size_t(rows) * row_bytes);
        std::span<std::byte> into = dst;
        if (interleaved) {
          scratch.resize(dst.size() * spp);
          into = scratch;
        }
        const auto n = TIFFReadEncodedStrip(t, strip, into.data(), tmsize_t(into.size()));
        if (n < 0 || std::size_t(n) < into.size())
          return fail(ErrorCode::kCorrupt, "{} strip {}: {}", where, strip,
                      n < 0 ? g_tiff_message : "short strip");
        if (interleaved) take(scratch, dst);
        read += std::uint64_t(n);
      }
      if (y1 - y0 < chunk_rows)
        fill_with(out.subspan(std::size_t(y1 - y0) * row_bytes), info_.dtype, 0);
    }
    release(std::move(handle));
    return ReadResult{false, read};
  }

 private:
  // libtiff handles are not thread-safe: keep a free list, one handle per concurrent read.
  Result<TiffPtr> acquire() const {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        auto h = std::move(free_.back());
        free_.pop_back();
        return h;
      }
    }
    TiffPtr h(TIFFOpen(path_.c_str(), "rm"));
    if (!h) return fail(ErrorCode::kIo, "{}: cannot open: {}", path_, g_tiff_message);
    return h;
  }
  void release(TiffPtr h) const {
    std::lock_guard lock(mutex_);
    if (free_.size() < 64) free_.push_back(std::move(h));
  }

  VolumeInfo info_;
  std::string path_;
  std::vector<toff_t> pages_;
  PageFormat fmt_;
  std::vector<std::int64_t> lead_;
  mutable std::mutex mutex_;
  mutable std::vector<TiffPtr> free_;
};

}  // namespace

Result<SourcePtr> open_tiff(const std::string& path) {
  install_handlers();
  g_tiff_message.clear();
  TiffPtr t(TIFFOpen(path.c_str(), "rm"));
  if (!t) return fail(ErrorCode::kFormat, "{}: not a readable TIFF ({})", path, g_tiff_message);
  const PageFormat first = read_format(t.get());
  std::vector<toff_t> pages;
  do {
    const PageFormat f = read_format(t.get());
    if (!(f == first))
      return fail(ErrorCode::kUnsupported,
                  "{}: page {} differs from page 0 in size, type or layout; only uniform stacks "
                  "are supported",
                  path, pages.size());
    pages.push_back(TIFFCurrentDirOffset(t.get()));
  } while (TIFFReadDirectory(t.get()));
  if (first.spp < 1 || first.spp > 64)
    return fail(ErrorCode::kUnsupported, "{}: {} samples per pixel; 1 to 64 are supported", path,
                first.spp);
  if (first.width == 0 || first.height == 0)
    return fail(ErrorCode::kFormat, "{}: page 0 has no pixels", path);
  std::string kind = first.sample_format == SAMPLEFORMAT_IEEEFP ? "float"
                     : first.sample_format == SAMPLEFORMAT_INT  ? "int"
                                                                : "uint";
  auto dt = parse_dtype_name(kind + std::to_string(first.bps));
  if (!dt)
    return fail(ErrorCode::kUnsupported, "{}: {} (BitsPerSample={}, SampleFormat={})", path,
                dt.error().message, first.bps, first.sample_format);
  VolumeInfo info;
  std::optional<std::array<double, 2>> display_range;
  info.location = path;
  info.format = "tiff";
  info.dtype = *dt;
  // Calibration and page layout from page 0 (ImageJ, OME-XML, or centimetre resolution tags).
  TiffCalibration cal;
  {
    TiffResolution res;
    float xres = 0, yres = 0;
    std::uint16_t res_unit = RESUNIT_INCH;
    TIFFSetDirectory(t.get(), 0);
    if (TIFFGetField(t.get(), TIFFTAG_XRESOLUTION, &xres)) res.x = xres;
    if (TIFFGetField(t.get(), TIFFTAG_YRESOLUTION, &yres)) res.y = yres;
    TIFFGetFieldDefaulted(t.get(), TIFFTAG_RESOLUTIONUNIT, &res_unit);
    res.unit = res_unit;
    const char* desc = nullptr;
    std::string_view description;
    if (TIFFGetField(t.get(), TIFFTAG_IMAGEDESCRIPTION, &desc) && desc) description = desc;
    cal = read_tiff_calibration(description, res, path);
  }
  info.warnings = std::move(cal.warnings);
  // Axes before y and x: (c) for a pixel's samples; else pages as a hyperstack (t, c, z in
  // the metadata's page order) or a z stack; a single page is a 2D image.
  Level lv;
  std::vector<std::int64_t> lead;
  auto add = [&](Axis a, std::int64_t size, std::int64_t stride) {
    info.axes.push_back(std::move(a));
    lv.shape.push_back(size);
    lv.chunks.push_back(1);
    lead.push_back(stride);
  };
  const auto npages = std::int64_t(pages.size());
  std::int64_t nc = std::max<std::int64_t>(1, cal.channels),
               nt = std::max<std::int64_t>(1, cal.frames);
  std::int64_t nz = cal.slices > 0 ? cal.slices : npages / (nc * nt);
  const bool hyper = first.spp == 1 && (nc > 1 || nt > 1);
  const bool fits = hyper && nc * nz * nt == npages;
  if (hyper && !fits)
    info.warnings.push_back(
        {path, cal.kind == "ome" ? "OME-XML: Pixels" : "ImageDescription: channels/slices/frames",
         fmt::format("{} channels x {} slices x {} frames do not make the file's {} pages; read "
                     "as a z stack",
                     nc, nz, nt, npages)});
  int z_axis = -1;
  if (fits) {
    std::map<char, std::int64_t> size{{'c', nc}, {'z', nz}, {'t', nt}}, stride;
    std::int64_t step = 1;
    for (char ch : cal.order) {
      stride[ch] = step;
      step *= size[ch];
    }
    if (nt > 1) {
      add(Axis{"t", AxisType::kTime, cal.frame_interval > 0 ? "second" : ""}, nt, stride['t']);
      if (cal.frame_interval > 0) lv.scale.resize(1, cal.frame_interval);
    }
    if (nc > 1) add(Axis{"c", AxisType::kChannel, ""}, nc, stride['c']);
    if (nz > 1) {
      z_axis = int(info.axes.size());
      add(Axis{"z", AxisType::kSpace, ""}, nz, stride['z']);
    }
  } else {
    if (first.spp > 1) add(Axis{"c", AxisType::kChannel, ""}, first.spp, -1);
    if (npages > 1) {
      z_axis = int(info.axes.size());
      add(Axis{"z", AxisType::kSpace, ""}, npages, 1);
    }
  }
  info.axes.push_back(Axis{"y", AxisType::kSpace, cal.unit[1]});
  info.axes.push_back(Axis{"x", AxisType::kSpace, cal.unit[2]});
  lv.shape.push_back(first.height);
  lv.shape.push_back(first.width);
  if (first.tiled) {
    lv.chunks.push_back(first.tile_h);
    lv.chunks.push_back(first.tile_w);
  } else {
    // Whole strips, about 256 rows per chunk.
    const std::uint32_t k = std::max<std::uint32_t>(1, 256 / first.rows_per_strip);
    lv.chunks.push_back(
        std::min<std::int64_t>(std::int64_t(k) * first.rows_per_strip, first.height));
    lv.chunks.push_back(first.width);
  }
  const std::size_t nd = lv.shape.size();
  lv.translation.assign(nd, 0.0);
  lv.scale.resize(nd, 1.0);
  lv.scale[nd - 2] = cal.scale[1];
  lv.scale[nd - 1] = cal.scale[2];
  if (z_axis >= 0) {
    lv.scale[std::size_t(z_axis)] = cal.scale[0];
    info.axes[std::size_t(z_axis)].unit = cal.unit[0];
  }
  display_range = cal.display_range;
  const char* comp = first.compression == COMPRESSION_NONE            ? "none"
                     : first.compression == COMPRESSION_ADOBE_DEFLATE ? "deflate"
                     : first.compression == COMPRESSION_DEFLATE       ? "deflate"
                     : first.compression == COMPRESSION_LZW           ? "lzw"
                     : first.compression == COMPRESSION_PACKBITS      ? "packbits"
                     : first.compression == COMPRESSION_ZSTD          ? "zstd"
                                                                      : "other";
  lv.codec = fmt::format("tiff {} ({})", first.tiled ? "tiles" : "strips", comp);
  info.levels.push_back(std::move(lv));
  std::uint16_t photometric = PHOTOMETRIC_MINISBLACK, extra = 0;
  std::uint16_t* extra_types = nullptr;
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_EXTRASAMPLES, &extra, &extra_types);
  const bool rgb = photometric == PHOTOMETRIC_RGB && (first.spp == 3 || first.spp == 4);
  const bool gray_alpha = first.spp == 2 && extra == 1;
  if (rgb || gray_alpha) {
    info.channels = colour_channels(first.spp, rgb, info.dtype);
  } else {
    info.channels = default_channels(info.axes, info.levels[0].shape);
  }
  if (display_range && info.channels.size() == 1)
    info.channels[0].window =
        Window{(*display_range)[0], (*display_range)[1], (*display_range)[0], (*display_range)[1]};
  return SourcePtr(std::make_shared<TiffSource>(std::move(info), path, std::move(pages), first,
                                                std::move(lead)));
}

}  // namespace vx::data
