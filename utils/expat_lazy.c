/* kiln — expat loaded on first use (utils/lazylib): only AWS replies and
 * Maven POMs are XML, but linking expat made every command bind it at
 * start-up. A missing library ends kiln at first use naming it, as the loader
 * did when it was linked. */
#include <expat.h>

#include "utils/lazylib.h"

typedef XML_Parser P;

#define EXPAT_FUNCS(F, V)                                                                          \
    F(P, XML_ParserCreateNS, (const XML_Char *enc, XML_Char sep), (enc, sep), 0)                   \
    F(P, XML_ParserCreate_MM,                                                                      \
      (const XML_Char *enc, const XML_Memory_Handling_Suite *mem, const XML_Char *sep),            \
      (enc, mem, sep), 0)                                                                          \
    V(XML_ParserFree, (P p), (p))                                                                  \
    V(XML_SetUserData, (P p, void *data), (p, data))                                               \
    V(XML_SetElementHandler, (P p, XML_StartElementHandler s, XML_EndElementHandler e), (p, s, e)) \
    V(XML_SetCharacterDataHandler, (P p, XML_CharacterDataHandler h), (p, h))                      \
    V(XML_SetEntityDeclHandler, (P p, XML_EntityDeclHandler h), (p, h))                            \
    V(XML_SetStartDoctypeDeclHandler, (P p, XML_StartDoctypeDeclHandler h), (p, h))                \
    F(int, XML_SetParamEntityParsing, (P p, enum XML_ParamEntityParsing v), (p, v), 0)             \
    F(enum XML_Status, XML_Parse, (P p, const char *s, int len, int final), (p, s, len, final),    \
      XML_STATUS_ERROR)                                                                            \
    F(enum XML_Status, XML_StopParser, (P p, XML_Bool resumable), (p, resumable),                  \
      XML_STATUS_ERROR)                                                                            \
    F(enum XML_Error, XML_GetErrorCode, (P p), (p), XML_ERROR_NONE)                                \
    F(const XML_LChar *, XML_ErrorString, (enum XML_Error code), (code), 0)                        \
    F(XML_Size, XML_GetCurrentLineNumber, (P p), (p), 0)                                           \
    F(XML_Size, XML_GetCurrentColumnNumber, (P p), (p), 0)

#define EXPAT_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(EXPAT_FUNCS, EXPAT_HANDWRITTEN, "libexpat.so.1",
                             "to read XML (AWS replies, Maven POMs)")
KILN_LAZYLIB_PRELOADER(expat)
