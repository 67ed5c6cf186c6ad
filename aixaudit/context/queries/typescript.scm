; Repository context, TypeScript and TSX only: read after javascript.scm, whose imports and
; definitions hold in both (capture names: see aixaudit/context/outline.py).

(program (interface_declaration name: (_) @definition.name body: (_) @definition.body) @definition)
(program (export_statement declaration:
  (interface_declaration name: (_) @definition.name body: (_) @definition.body)) @definition)
(program (type_alias_declaration name: (_) @definition.name) @definition)
(program (export_statement declaration: (type_alias_declaration name: (_) @definition.name)) @definition)
