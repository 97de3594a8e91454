# The CUDA renderer (src/render/cuda) is built when nvcc is found: -DVOXCAST_CUDA=AUTO (the
# default), ON (nvcc required: configure fails without it) or OFF. The CUDA runtime is linked
# statically (CUDA::cudart_static), so the binary needs only the driver where it runs, and
# without one it falls back to the CPU renderer with the reason (render/select.hpp).
# Sets VOXCAST_HAVE_CUDA.
set(VOXCAST_CUDA "AUTO" CACHE STRING "Build the CUDA renderer: AUTO (when nvcc is found), ON, OFF")
set_property(CACHE VOXCAST_CUDA PROPERTY STRINGS AUTO ON OFF)
# sm_90: H100/H200. Add more for other GPUs, e.g. -DVOXCAST_CUDA_ARCHITECTURES="80;90".
set(VOXCAST_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures of the CUDA renderer")
set(VOXCAST_HAVE_CUDA OFF)
if(NOT VOXCAST_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(VOXCAST_NVCC nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME /usr/local/cuda
                 PATH_SUFFIXES bin)
    if(VOXCAST_NVCC)
      set(CMAKE_CUDA_COMPILER "${VOXCAST_NVCC}")
    endif()
  endif()
  # nvcc compiles the host side of .cu files with the project's compiler (clang++ in the
  # presets; nvcc 13 accepts clang 14).
  if(NOT CMAKE_CUDA_HOST_COMPILER)
    set(CMAKE_CUDA_HOST_COMPILER "${CMAKE_CXX_COMPILER}")
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "${VOXCAST_CUDA_ARCHITECTURES}")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND AND TARGET CUDA::cudart_static)
      set(VOXCAST_HAVE_CUDA ON)
      # C++17 for the kernels (CMake 3.25 knows no CUDA20 dialect for nvcc; they need no more).
      set(CMAKE_CUDA_STANDARD 17)
      set(CMAKE_CUDA_STANDARD_REQUIRED ON)
      if(CCACHE_PROGRAM)
        set(CMAKE_CUDA_COMPILER_LAUNCHER "${CCACHE_PROGRAM}")
      endif()
    endif()
  endif()
  if(NOT VOXCAST_HAVE_CUDA AND VOXCAST_CUDA STREQUAL "ON")
    message(FATAL_ERROR "VOXCAST_CUDA=ON but no working nvcc and CUDA runtime were found "
                        "(set CUDACXX or CMAKE_CUDA_COMPILER, or use -DVOXCAST_CUDA=AUTO)")
  endif()
endif()
if(VOXCAST_HAVE_CUDA)
  message(STATUS "CUDA renderer: on (${CMAKE_CUDA_COMPILER}, CUDA ${CUDAToolkit_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "CUDA renderer: off (VOXCAST_CUDA=${VOXCAST_CUDA}; the CPU renderer only)")
endif()
