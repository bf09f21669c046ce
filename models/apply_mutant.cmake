# cmake -DID= -DSRC=<core/include> -DDST=<copy> -DFILE=<path under include> \
#       -DFIND_FILE= -DREPLACE_FILE= -P apply_mutant.cmake
# Copies core/include to DST and replaces the exact original text, which must
# occur exactly once: a mutant whose original text is gone fails the build.
# Idempotent: file(COPY) skips files whose timestamp already matches, and the
# mutated header is rewritten only when its text changes, so re-running this
# step (after a re-configure) does not recompile the mutant.
if(NOT EXISTS ${SRC}/${FILE})
  message(FATAL_ERROR "mutant ${ID}: ${FILE} does not exist in core/include; update models/mutants.cmake")
endif()
string(REPLACE "." "\\." skip "/${FILE}$")
file(COPY ${SRC}/ DESTINATION ${DST} REGEX "${skip}" EXCLUDE)
set(path ${DST}/${FILE})
file(READ ${SRC}/${FILE} text)
file(READ ${FIND_FILE} find)
file(READ ${REPLACE_FILE} repl)
string(FIND "${text}" "${find}" first)
string(FIND "${text}" "${find}" last REVERSE)
if(first EQUAL -1)
  message(FATAL_ERROR "mutant ${ID}: original text not found in core/include/${FILE}; "
                      "the header changed, so update models/mutants.cmake. Text:\n${find}")
endif()
if(NOT first EQUAL last)
  message(FATAL_ERROR "mutant ${ID}: original text occurs more than once in ${FILE}; make it unique")
endif()
string(REPLACE "${find}" "${repl}" text "${text}")
file(WRITE ${path}.tmp "${text}")
configure_file(${path}.tmp ${path} COPYONLY)
file(REMOVE ${path}.tmp)
