// Paths taken from a request or from a stored file resolve inside their root: one helper
// for every place that turns an outside name into a file to open (DESIGN.md, "Paths").
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace vx {

// `relative` (a name from a request, or from a file the server stored) as a path inside
// `root`, or kInvalidArgument. Refused: empty names, absolute paths, NUL bytes,
// backslashes, names whose lexically normal form climbs out of the root ("..", "a/../.."),
// and names that resolve outside the root through a symbolic link (the existing part of
// the path is resolved with weakly_canonical, then checked component by component against
// the root's canonical form), and names of the root itself ("."). The result is canonical
// where it exists and need not exist.
Result<std::filesystem::path> resolve_inside(const std::filesystem::path& root,
                                             std::string_view relative);

// Whether `a` equals `b`, in a time that depends on their lengths only, not on where they
// first differ: for comparing secrets (tokens) that a client supplies.
bool constant_time_equal(std::string_view a, std::string_view b);

// Short names of datasets for people (page titles, pickers, job lists), one per location,
// distinct: the last path component ("brain.ome.zarr" of "/scratch/brain.ome.zarr/"), or
// "synthetic:NAME" without its options; names that would repeat get their parent folder
// ("a/img.tif", "b/img.tif"), then " #N" if that is not enough.
std::vector<std::string> dataset_names(const std::vector<std::string>& locations);

// The default folder for a server's job results: DIR/voxcast/NAME-HASH, where DIR is
// $XDG_STATE_HOME, else $HOME/.local/state, else ./.voxcast-state; NAME is the first
// dataset's name (letters, digits, '.', '_', '-'; at most 40) and HASH 12 hex digits of the
// absolute locations of all datasets, in order. The same datasets share a folder (their jobs
// survive restarts); other datasets get another one.
std::filesystem::path default_data_dir(const std::vector<std::string>& locations);

}  // namespace vx
