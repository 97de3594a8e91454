#include "data/zarr_meta.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>

namespace vx::data {
namespace {

using Kind = CodecSpec::Kind;

Status check_shape(ArrayMeta& m, const Where& ws, const Where& wc) {
  if (m.shape.empty() || m.shape.size() > std::size_t(kMaxDims))
    return fail(ErrorCode::kUnsupported, "{}: {} dimensions, supported are 1 to {}", ws.str(),
                m.shape.size(), kMaxDims);
  for (auto s : m.shape)
    if (s < 0) return fail(ErrorCode::kFormat, "{}: negative size {}", ws.str(), s);
  if (m.chunks.size() != m.shape.size())
    return fail(ErrorCode::kFormat, "{}: has {} entries but shape has {}", wc.str(),
                m.chunks.size(), m.shape.size());
  for (auto c : m.chunks)
    if (c <= 0)
      return fail(ErrorCode::kFormat, "{}: chunk sizes must be positive, got {}", wc.str(), c);
  return {};
}

// numpy typestr "<u2", "|u1", ">f4"
Status parse_typestr(const std::string& s, ArrayMeta& m, const Where& w) {
  if (s.size() < 3 || std::string("<>|=").find(s[0]) == std::string::npos)
    return fail(ErrorCode::kUnsupported, "{}: data type '{}' is not a simple numpy type string",
                w.str(), s);
  const char kind = s[1];
  const std::string size = s.substr(2);
  std::string name;
  if (kind == 'u' || kind == 'i')
    name = std::string(kind == 'u' ? "uint" : "int");
  else if (kind == 'f')
    name = "float";
  else if (kind == 'b' && size == "1")
    name = "uint";
  else
    return fail(ErrorCode::kUnsupported,
                "{}: data type '{}' is not supported (unsigned/signed integers and floats)",
                w.str(), s);
  // One digit: 1, 2, 4 or 8 bytes (found by fuzzing: "<u555555555" overflowed bytes * 8).
  if (size.size() != 1 || size[0] < '1' || size[0] > '8')
    return fail(ErrorCode::kUnsupported,
                "{}: data type '{}' has an item size that is not 1, 2, 4 or 8", w.str(), s);
  const int bytes = size[0] - '0';
  auto dt = parse_dtype_name(name + std::to_string(bytes * 8));
  if (!dt) return fail(ErrorCode::kUnsupported, "{}: {}", w.str(), dt.error().message);
  m.dtype = *dt;
  m.codecs.array_to_bytes.kind = Kind::kBytes;
  m.codecs.array_to_bytes.big_endian = s[0] == '>';
  m.codecs.array_to_bytes.desc = s[0] == '>' ? "bytes(big)" : "bytes";
  return {};
}

const char* shuffle_name(int s) {
  return s == 2 ? "bitshuffle" : s == 1 ? "shuffle" : "noshuffle";
}

Result<CodecSpec> blosc_spec(const std::string& cname, int shuffle, const Where& w) {
  static const char* known[] = {"lz4", "lz4hc", "zstd", "zlib", "blosclz", "snappy"};
  if (std::find(std::begin(known), std::end(known), cname) == std::end(known))
    return fail(ErrorCode::kUnsupported, "{}: blosc compressor '{}' is unknown", w.str(), cname);
  CodecSpec s{
      Kind::kBlosc, {}, false, nullptr, fmt::format("blosc({},{})", cname, shuffle_name(shuffle))};
  s.cname = cname;
  s.shuffle = static_cast<Shuffle>(std::clamp(shuffle, 0, 2));
  return s;
}

Result<CodecChain> parse_v3_codecs(const json& list, const Where& w, std::size_t ndim, DType dtype,
                                   bool inner);

Result<CodecSpec> parse_v3_codec(const json& c, const Where& w, std::size_t ndim, DType dtype,
                                 bool inner) {
  std::string name;
  const json* conf = nullptr;
  static const json kEmpty = json::object();
  if (c.is_string()) {
    name = c.get<std::string>();
  } else {
    VX_ASSIGN(auto n, require(c, "name", w));
    VX_ASSIGN(name, as_string(*n, w / "name"));
    VX_ASSIGN(conf, optional_field(c, "configuration", w));
  }
  const json& cf = conf ? *conf : kEmpty;
  const Where wc = w / "configuration";
  CodecSpec s;
  if (name == "bytes" || name == "endian") {
    s.kind = Kind::kBytes;
    VX_ASSIGN(auto e, optional_field(cf, "endian", wc));
    if (e) {
      VX_ASSIGN(auto endian, as_string(*e, wc / "endian"));
      if (endian != "little" && endian != "big")
        return fail(ErrorCode::kFormat, "{}: endian must be \"little\" or \"big\", got \"{}\"",
                    (wc / "endian").str(), endian);
      s.big_endian = endian == "big";
    } else if (dtype_size(dtype) > 1) {
      return fail(ErrorCode::kFormat, "{}: required for multi-byte data types",
                  (wc / "endian").str());
    }
    s.desc = s.big_endian ? "bytes(big)" : "bytes";
  } else if (name == "transpose") {
    s.kind = Kind::kTranspose;
    VX_ASSIGN(auto o, require(cf, "order", wc));
    if (o->is_string()) {  // early drafts: "C" or "F"
      const auto v = o->get<std::string>();
      s.order.resize(ndim);
      std::iota(s.order.begin(), s.order.end(), 0);
      if (v == "F")
        std::reverse(s.order.begin(), s.order.end());
      else if (v != "C")
        return fail(ErrorCode::kFormat, "{}: \"{}\" is not C, F or a permutation",
                    (wc / "order").str(), v);
    } else {
      VX_ASSIGN(auto ord, as_int_array(*o, wc / "order"));
      std::vector<int> seen(ndim, 0);
      if (ord.size() != ndim)
        return fail(ErrorCode::kFormat, "{}: has {} entries, the array has {} dimensions",
                    (wc / "order").str(), ord.size(), ndim);
      for (auto v : ord) {
        if (v < 0 || std::size_t(v) >= ndim || seen[std::size_t(v)]++)
          return fail(ErrorCode::kFormat, "{}: is not a permutation of 0..{}", (wc / "order").str(),
                      ndim - 1);
        s.order.push_back(int(v));
      }
    }
    s.desc = fmt::format("transpose({})", fmt::join(s.order, ","));
  } else if (name == "sharding_indexed") {
    if (inner)
      return fail(ErrorCode::kUnsupported, "{}: nested sharding_indexed is not supported", w.str());
    s.kind = Kind::kSharding;
    auto shard = std::make_shared<ShardSpec>();
    VX_ASSIGN(auto cs, require(cf, "chunk_shape", wc));
    VX_ASSIGN(shard->inner_chunks, as_int_array(*cs, wc / "chunk_shape"));
    VX_ASSIGN(auto codecs, require(cf, "codecs", wc));
    VX_ASSIGN(shard->inner, parse_v3_codecs(*codecs, wc / "codecs", ndim, dtype, true));
    VX_ASSIGN(auto ic, optional_field(cf, "index_codecs", wc));
    if (ic) {
      VX_ASSIGN(shard->index, parse_v3_codecs(*ic, wc / "index_codecs", 1, DType::kUInt32, true));
      shard->index.array_to_bytes.desc = shard->index.array_to_bytes.big_endian ? "big" : "little";
    } else {
      shard->index.array_to_bytes.kind = Kind::kBytes;
    }
    for (const auto& b : shard->index.bytes_to_bytes)
      if (b.kind != Kind::kCrc32c)
        return fail(ErrorCode::kUnsupported,
                    "{}: only bytes and crc32c are supported for the shard index",
                    (wc / "index_codecs").str());
    if (!shard->index.array_to_array.empty())
      return fail(ErrorCode::kUnsupported, "{}: array codecs on the shard index are not supported",
                  (wc / "index_codecs").str());
    VX_ASSIGN(auto loc, optional_field(cf, "index_location", wc));
    if (loc) {
      VX_ASSIGN(auto l, as_string(*loc, wc / "index_location"));
      if (l != "start" && l != "end")
        return fail(ErrorCode::kFormat, "{}: must be \"start\" or \"end\", got \"{}\"",
                    (wc / "index_location").str(), l);
      shard->index_at_end = l == "end";
    }
    s.desc = fmt::format("sharding(inner={},index={}) -> {}", fmt::join(shard->inner_chunks, "x"),
                         shard->index_at_end ? "end" : "start", shard->inner.describe());
    s.shard = std::move(shard);
  } else if (name == "blosc") {
    VX_ASSIGN(auto cn, require(cf, "cname", wc));
    VX_ASSIGN(auto cname, as_string(*cn, wc / "cname"));
    int shuffle = 0;
    VX_ASSIGN(auto sh, optional_field(cf, "shuffle", wc));
    if (sh) {
      VX_ASSIGN(auto v, as_string(*sh, wc / "shuffle"));
      if (v == "shuffle")
        shuffle = 1;
      else if (v == "bitshuffle")
        shuffle = 2;
      else if (v != "noshuffle")
        return fail(ErrorCode::kFormat, "{}: \"{}\" is not noshuffle, shuffle or bitshuffle",
                    (wc / "shuffle").str(), v);
    }
    VX_ASSIGN(s, blosc_spec(cname, shuffle, wc / "cname"));
  } else if (name == "zstd") {
    s = {Kind::kZstd, {}, false, nullptr, "zstd"};
  } else if (name == "gzip") {
    s = {Kind::kGzip, {}, false, nullptr, "gzip"};
  } else if (name == "crc32c") {
    s = {Kind::kCrc32c, {}, false, nullptr, "crc32c"};
  } else {
    return fail(ErrorCode::kUnsupported,
                "{}: codec '{}' is not supported (bytes, transpose, sharding_indexed, blosc, zstd, "
                "gzip, crc32c)",
                (w / "name").str(), name);
  }
  return s;
}

Result<CodecChain> parse_v3_codecs(const json& list, const Where& w, std::size_t ndim, DType dtype,
                                   bool inner) {
  if (!list.is_array() || list.empty())
    return fail(ErrorCode::kFormat, "{}: expected a non-empty array of codecs", w.str());
  CodecChain chain;
  bool have_a2b = false;
  for (std::size_t i = 0; i < list.size(); ++i) {
    VX_ASSIGN(auto c, parse_v3_codec(list[i], w.at(i), ndim, dtype, inner));
    const bool a2a = c.kind == Kind::kTranspose;
    const bool a2b = c.kind == Kind::kBytes || c.kind == Kind::kSharding;
    if (a2a) {
      if (have_a2b)
        return fail(ErrorCode::kFormat, "{}: array-to-array codec after the array-to-bytes codec",
                    w.at(i).str());
      chain.array_to_array.push_back(std::move(c));
    } else if (a2b) {
      if (have_a2b)
        return fail(ErrorCode::kFormat, "{}: more than one array-to-bytes codec", w.at(i).str());
      have_a2b = true;
      chain.array_to_bytes = std::move(c);
    } else {
      if (!have_a2b)
        return fail(ErrorCode::kFormat, "{}: bytes-to-bytes codec before the array-to-bytes codec",
                    w.at(i).str());
      chain.bytes_to_bytes.push_back(std::move(c));
    }
  }
  if (!have_a2b)
    return fail(ErrorCode::kFormat, "{}: no array-to-bytes codec (bytes or sharding_indexed)",
                w.str());
  if (chain.array_to_bytes.kind == Kind::kSharding && !chain.array_to_array.empty())
    return fail(ErrorCode::kUnsupported, "{}: transpose before sharding_indexed is not supported",
                w.str());
  return chain;
}

}  // namespace

std::string CodecChain::describe() const {
  std::vector<std::string> parts;
  for (const auto& c : array_to_array)
    parts.push_back(c.desc);
  parts.push_back(array_to_bytes.desc);
  for (const auto& c : bytes_to_bytes)
    parts.push_back(c.desc);
  return fmt::format("{}", fmt::join(parts, " | "));
}

std::string ArrayMeta::chunk_key(std::span<const std::int64_t> index) const {
  std::string key = default_key_encoding ? "c" : "";
  for (std::size_t i = 0; i < index.size(); ++i) {
    if (!key.empty() || i > 0) key += separator;
    key += std::to_string(index[i]);
  }
  if (key.empty()) key = "0";
  return key;
}

Status require_zarr_format(const json& j, const std::string& file, int expected) {
  const Where w{file, ""};
  VX_ASSIGN(auto zf, require(j, "zarr_format", w));
  VX_ASSIGN(auto v, as_int(*zf, w / "zarr_format"));
  if (v != expected)
    return fail(ErrorCode::kUnsupported, "{}: is {}, expected {} for this file",
                (w / "zarr_format").str(), v, expected);
  return {};
}

Result<ArrayMeta> parse_zarray_v2(const json& j, const std::string& file) {
  const Where w{file, ""};
  ArrayMeta m;
  m.zarr_format = 2;
  VX_TRY(require_zarr_format(j, file, 2));
  VX_ASSIGN(auto shape, require(j, "shape", w));
  VX_ASSIGN(m.shape, as_int_array(*shape, w / "shape"));
  VX_ASSIGN(auto chunks, require(j, "chunks", w));
  VX_ASSIGN(m.chunks, as_int_array(*chunks, w / "chunks"));
  VX_TRY(check_shape(m, w / "shape", w / "chunks"));
  VX_ASSIGN(auto dt, require(j, "dtype", w));
  VX_ASSIGN(auto dts, as_string(*dt, w / "dtype"));
  VX_TRY(parse_typestr(dts, m, w / "dtype"));
  VX_ASSIGN(auto fill, optional_field(j, "fill_value", w));
  if (fill) {
    VX_ASSIGN(m.fill_value, as_fill_value(*fill, w / "fill_value"));
  }
  VX_ASSIGN(auto order, optional_field(j, "order", w));
  if (order) {
    VX_ASSIGN(auto o, as_string(*order, w / "order"));
    if (o == "F") {
      CodecSpec t{Kind::kTranspose, {}, false, nullptr, "order=F"};
      for (int i = int(m.shape.size()) - 1; i >= 0; --i)
        t.order.push_back(i);
      m.codecs.array_to_array.push_back(std::move(t));
    } else if (o != "C") {
      return fail(ErrorCode::kFormat, "{}: must be \"C\" or \"F\", got \"{}\"", (w / "order").str(),
                  o);
    }
  }
  VX_ASSIGN(auto filters, optional_field(j, "filters", w));
  if (filters && !(filters->is_array() && filters->empty())) {
    std::string id = filters->is_array() && filters->at(0).is_object()
                         ? filters->at(0).value("id", std::string("?"))
                         : filters->dump().substr(0, 40);
    return fail(ErrorCode::kUnsupported, "{}: filter '{}' is not supported (only null)",
                (w / "filters").str(), id);
  }
  VX_ASSIGN(auto sep, optional_field(j, "dimension_separator", w));
  if (sep) {
    VX_ASSIGN(auto s, as_string(*sep, w / "dimension_separator"));
    if (s != "." && s != "/")
      return fail(ErrorCode::kFormat, "{}: must be \".\" or \"/\", got \"{}\"",
                  (w / "dimension_separator").str(), s);
    m.separator = s[0];
  }
  VX_ASSIGN(auto comp, optional_field(j, "compressor", w));
  if (comp) {
    const Where wc = w / "compressor";
    VX_ASSIGN(auto idj, require(*comp, "id", wc));
    VX_ASSIGN(auto id, as_string(*idj, wc / "id"));
    if (id == "blosc") {
      VX_ASSIGN(auto cn, require(*comp, "cname", wc));
      VX_ASSIGN(auto cname, as_string(*cn, wc / "cname"));
      std::int64_t shuffle = 1;
      VX_ASSIGN(auto sh, optional_field(*comp, "shuffle", wc));
      if (sh) {
        VX_ASSIGN(shuffle, as_int(*sh, wc / "shuffle"));
      }
      if (shuffle == -1) shuffle = dtype_size(m.dtype) == 1 ? 2 : 1;  // AUTOSHUFFLE
      VX_ASSIGN(auto spec, blosc_spec(cname, int(shuffle), wc / "cname"));
      m.codecs.bytes_to_bytes.push_back(std::move(spec));
    } else if (id == "zstd") {
      m.codecs.bytes_to_bytes.push_back({Kind::kZstd, {}, false, nullptr, "zstd"});
    } else if (id == "gzip") {
      m.codecs.bytes_to_bytes.push_back({Kind::kGzip, {}, false, nullptr, "gzip"});
    } else if (id == "zlib") {
      m.codecs.bytes_to_bytes.push_back({Kind::kZlib, {}, false, nullptr, "zlib"});
    } else {
      return fail(ErrorCode::kUnsupported,
                  "{}: compressor '{}' is not supported (blosc, zstd, gzip, zlib or null)",
                  (wc / "id").str(), id);
    }
  }
  return m;
}

Result<ArrayMeta> parse_zarr_json_v3(const json& j, const std::string& file) {
  const Where w{file, ""};
  ArrayMeta m;
  m.zarr_format = 3;
  VX_TRY(require_zarr_format(j, file, 3));
  VX_ASSIGN(auto nt, require(j, "node_type", w));
  VX_ASSIGN(auto node_type, as_string(*nt, w / "node_type"));
  if (node_type != "array")
    return fail(ErrorCode::kFormat, "{}: is \"{}\", expected \"array\"", (w / "node_type").str(),
                node_type);
  VX_ASSIGN(auto shape, require(j, "shape", w));
  VX_ASSIGN(m.shape, as_int_array(*shape, w / "shape"));
  VX_ASSIGN(auto dt, require(j, "data_type", w));
  VX_ASSIGN(auto dts, as_string(*dt, w / "data_type"));
  auto dtype = parse_dtype_name(dts);
  if (!dtype)
    return fail(ErrorCode::kUnsupported, "{}: {}", (w / "data_type").str(), dtype.error().message);
  m.dtype = *dtype;
  VX_ASSIGN(auto grid, require(j, "chunk_grid", w));
  VX_ASSIGN(auto gname, require(*grid, "name", w / "chunk_grid"));
  VX_ASSIGN(auto gn, as_string(*gname, w / "chunk_grid.name"));
  if (gn != "regular")
    return fail(ErrorCode::kUnsupported, "{}: chunk grid '{}' is not supported (regular)",
                (w / "chunk_grid.name").str(), gn);
  VX_ASSIGN(auto gconf, require(*grid, "configuration", w / "chunk_grid"));
  VX_ASSIGN(auto cs, require(*gconf, "chunk_shape", w / "chunk_grid.configuration"));
  VX_ASSIGN(m.chunks, as_int_array(*cs, w / "chunk_grid.configuration.chunk_shape"));
  VX_TRY(check_shape(m, w / "shape", w / "chunk_grid.configuration.chunk_shape"));
  VX_ASSIGN(auto fill, require(j, "fill_value", w));
  VX_ASSIGN(m.fill_value, as_fill_value(*fill, w / "fill_value"));

  m.default_key_encoding = true;
  m.separator = '/';
  VX_ASSIGN(auto cke, optional_field(j, "chunk_key_encoding", w));
  if (cke) {
    const Where wk = w / "chunk_key_encoding";
    VX_ASSIGN(auto kn, require(*cke, "name", wk));
    VX_ASSIGN(auto kname, as_string(*kn, wk / "name"));
    if (kname == "v2") {
      m.default_key_encoding = false;
      m.separator = '.';
    } else if (kname != "default") {
      return fail(ErrorCode::kUnsupported, "{}: '{}' is not supported (default, v2)",
                  (wk / "name").str(), kname);
    }
    VX_ASSIGN(auto kc, optional_field(*cke, "configuration", wk));
    if (kc) {
      VX_ASSIGN(auto sep, optional_field(*kc, "separator", wk / "configuration"));
      if (sep) {
        VX_ASSIGN(auto s, as_string(*sep, wk / "configuration.separator"));
        if (s != "." && s != "/")
          return fail(ErrorCode::kFormat, "{}: must be \".\" or \"/\"",
                      (wk / "configuration.separator").str());
        m.separator = s[0];
      }
    }
  }
  VX_ASSIGN(auto codecs, require(j, "codecs", w));
  VX_ASSIGN(m.codecs, parse_v3_codecs(*codecs, w / "codecs", m.shape.size(), m.dtype, false));
  if (const auto* sh = m.sharding()) {
    const Where ws = w / "codecs.sharding_indexed.configuration.chunk_shape";
    if (sh->inner_chunks.size() != m.shape.size())
      return fail(ErrorCode::kFormat, "{}: has {} entries but shape has {}", ws.str(),
                  sh->inner_chunks.size(), m.shape.size());
    for (std::size_t i = 0; i < m.shape.size(); ++i)
      if (sh->inner_chunks[i] <= 0 || m.chunks[i] % sh->inner_chunks[i] != 0)
        return fail(ErrorCode::kFormat, "{}: inner chunk {} does not divide the shard size {}",
                    ws.str(), sh->inner_chunks[i], m.chunks[i]);
  }
  VX_ASSIGN(auto st, optional_field(j, "storage_transformers", w));
  if (st && !(st->is_array() && st->empty()))
    return fail(ErrorCode::kUnsupported, "{}: storage transformers are not supported",
                (w / "storage_transformers").str());
  VX_ASSIGN(auto dn, optional_field(j, "dimension_names", w));
  if (dn && dn->is_array()) {
    for (const auto& n : *dn)
      m.dimension_names.push_back(n.is_string() ? n.get<std::string>() : "");
  }
  VX_ASSIGN(auto attrs, optional_field(j, "attributes", w));
  if (attrs) m.attributes = *attrs;
  return m;
}

Status decode_chain(const CodecChain& chain, std::span<const std::byte> stored,
                    std::span<std::byte> out, std::span<const std::int64_t> shape,
                    std::size_t itemsize, const std::string& where) {
  std::span<const std::byte> cur = stored;
  Bytes scratch_a, scratch_b, tbuf;
  const bool transposed = !chain.array_to_array.empty();
  if (transposed) tbuf.resize(out.size());
  std::span<std::byte> target = transposed ? std::span<std::byte>(tbuf) : out;
  // Intermediate streams of a chain are compressed forms of the array: none of the codecs
  // expands its input by more than a few percent, so this bounds hostile size headers.
  const std::size_t max_intermediate = out.size() + out.size() / 4 + 65536;

  // bytes -> bytes, last codec first. Only the final decoder writes into target.
  int last_compressor = -1;
  for (int i = 0; i < int(chain.bytes_to_bytes.size()); ++i)
    if (chain.bytes_to_bytes[std::size_t(i)].kind != Kind::kCrc32c) {
      last_compressor = i;
      break;
    }
  for (int i = int(chain.bytes_to_bytes.size()) - 1; i >= 0; --i) {
    const auto& c = chain.bytes_to_bytes[std::size_t(i)];
    const bool final = i == last_compressor;
    Bytes& scratch = (i % 2) ? scratch_a : scratch_b;
    switch (c.kind) {
      case Kind::kCrc32c: {
        if (cur.size() < 4)
          return fail(ErrorCode::kCorrupt, "{}: {} bytes cannot hold a crc32c checksum", where,
                      cur.size());
        const auto body = cur.first(cur.size() - 4);
        std::uint32_t stored_crc;
        std::memcpy(&stored_crc, cur.data() + body.size(), 4);
        const auto actual = crc32c(body);
        if (stored_crc != actual)
          return fail(ErrorCode::kCorrupt,
                      "{}: crc32c checksum mismatch (stored {:08x}, computed {:08x})", where,
                      stored_crc, actual);
        cur = body;
        continue;
      }
      case Kind::kBlosc:
        if (final) {
          VX_TRY(blosc_decode(cur, target, where));
        } else {
          VX_ASSIGN(auto n, blosc_decoded_size(cur, where));
          if (n > max_intermediate)
            return fail(ErrorCode::kCorrupt, "{}: blosc stream claims {} bytes", where, n);
          scratch.resize(n);
          VX_TRY(blosc_decode(cur, scratch, where));
        }
        break;
      case Kind::kZstd:
        if (final)
          VX_TRY(zstd_decode(cur, target, where));
        else {
          VX_ASSIGN(scratch, zstd_decode_any(cur, max_intermediate, where));
        }
        break;
      case Kind::kGzip:
      case Kind::kZlib:
        if (final)
          VX_TRY(zlib_decode(cur, target, c.kind == Kind::kGzip, where));
        else {
          VX_ASSIGN(scratch, zlib_decode_any(cur, c.kind == Kind::kGzip, max_intermediate, where));
        }
        break;
      default:
        return fail(ErrorCode::kInternal, "{}: bad codec order", where);
    }
    if (final)
      cur = {};
    else
      cur = scratch;
  }
  if (last_compressor < 0) {  // no compressor: stored bytes are the array
    if (cur.size() != target.size())
      return fail(ErrorCode::kCorrupt, "{}: uncompressed chunk has {} bytes, expected {}", where,
                  cur.size(), target.size());
    std::memcpy(target.data(), cur.data(), cur.size());
  }
  if (chain.array_to_bytes.big_endian) byteswap_inplace(target, itemsize);

  if (transposed) {
    // Undo array->array codecs last first. Each transpose maps decoded -> encoded with
    // encoded = decoded.transpose(order); invert with the inverse permutation.
    std::vector<std::vector<std::int64_t>> shapes{{shape.begin(), shape.end()}};
    for (const auto& t : chain.array_to_array) {
      std::vector<std::int64_t> s(shape.size());
      for (std::size_t d = 0; d < s.size(); ++d)
        s[d] = shapes.back()[std::size_t(t.order[d])];
      shapes.push_back(std::move(s));
    }
    Bytes other(out.size());
    for (int i = int(chain.array_to_array.size()) - 1; i >= 0; --i) {
      const auto& t = chain.array_to_array[std::size_t(i)];
      std::vector<int> inv(t.order.size());
      for (std::size_t d = 0; d < inv.size(); ++d)
        inv[std::size_t(t.order[d])] = int(d);
      std::span<std::byte> dst = i == 0 ? out : std::span<std::byte>(other);
      transpose(tbuf, dst, shapes[std::size_t(i) + 1], inv, itemsize);
      if (i > 0) std::swap(tbuf, other);
    }
  }
  return {};
}

Result<Bytes> encode_chain(const CodecChain& chain, std::span<const std::byte> data,
                           std::size_t itemsize) {
  if (!chain.array_to_array.empty() || chain.array_to_bytes.kind != Kind::kBytes ||
      chain.array_to_bytes.big_endian)
    return fail(ErrorCode::kInternal, "encode_chain supports little-endian bytes codecs only");
  Bytes cur(data.begin(), data.end());
  for (const auto& c : chain.bytes_to_bytes) {
    switch (c.kind) {
      case Kind::kBlosc: {
        VX_ASSIGN(cur, blosc_encode(cur, itemsize, c.cname, c.level, c.shuffle));
        break;
      }
      case Kind::kZstd: {
        VX_ASSIGN(cur, zstd_encode(cur, c.level));
        break;
      }
      case Kind::kGzip: {
        VX_ASSIGN(cur, gzip_encode(cur, c.level));
        break;
      }
      case Kind::kCrc32c: {
        const auto crc = crc32c(cur);
        const auto* p = reinterpret_cast<const std::byte*>(&crc);
        cur.insert(cur.end(), p, p + 4);
        break;
      }
      default:
        return fail(ErrorCode::kInternal, "encode_chain: codec {} cannot encode", c.desc);
    }
  }
  return cur;
}

}  // namespace vx::data
