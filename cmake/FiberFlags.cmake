# fiber_apply_flags(<target>): the one place warnings and sanitizer flags are set.
include_guard(GLOBAL)

set(FIBER_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wunused -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion -Wformat=2)
set(FIBER_C_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wformat=2)

# Stack clash: probe every page of a large frame so that no frame can jump a
# fiber's guard (core/src/slots.cpp; fiber.h recommends it to users too).
include(CheckCXXCompilerFlag)
check_cxx_compiler_flag(-fstack-clash-protection FIBER_HAVE_STACK_CLASH_PROTECTION)
set(FIBER_HARDENING_FLAGS "")
if(FIBER_HAVE_STACK_CLASH_PROTECTION)
  set(FIBER_HARDENING_FLAGS -fstack-clash-protection)
endif()

set(FIBER_SAN_FLAGS "")
if(FIBER_SANITIZE STREQUAL "address")
  set(FIBER_SAN_FLAGS -fsanitize=address -fno-omit-frame-pointer)
elseif(FIBER_SANITIZE STREQUAL "thread")
  set(FIBER_SAN_FLAGS -fsanitize=thread)
elseif(FIBER_SANITIZE STREQUAL "undefined")
  set(FIBER_SAN_FLAGS -fsanitize=undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
elseif(NOT FIBER_SANITIZE STREQUAL "")
  message(FATAL_ERROR "FIBER_SANITIZE must be address, thread, undefined or empty")
endif()

function(fiber_apply_flags target)
  get_target_property(_type ${target} TYPE)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${FIBER_WARNINGS}>
    $<$<COMPILE_LANGUAGE:C>:${FIBER_C_WARNINGS}>
    $<$<BOOL:${FIBER_WERROR}>:-Werror>
    $<$<COMPILE_LANGUAGE:C,CXX>:${FIBER_HARDENING_FLAGS}>
    ${FIBER_SAN_FLAGS})
  if(FIBER_SAN_FLAGS AND NOT _type STREQUAL "OBJECT_LIBRARY" AND NOT _type STREQUAL "STATIC_LIBRARY")
    target_link_options(${target} PRIVATE ${FIBER_SAN_FLAGS})
  endif()
  if(FIBER_SANITIZE STREQUAL "address")
    target_compile_definitions(${target} PRIVATE FIBER_ASAN=1)
  elseif(FIBER_SANITIZE STREQUAL "thread")
    target_compile_definitions(${target} PRIVATE FIBER_TSAN=1)
  endif()
endfunction()
