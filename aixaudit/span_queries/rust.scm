; Span query for Rust (capture names are fixed: see aixaudit/spans.py).
; Bodies are the whole `{...}` block; conditions are the expression (or `let` pattern) itself.
; A block's tail expression (no semicolon) counts as a statement; macros count as calls.

(function_item body: (block) @span.function_body)
(closure_expression body: (block) @span.function_body)

(if_expression consequence: (block) @span.block_body)
(else_clause (block) @span.block_body)
(for_expression body: (block) @span.block_body)
(while_expression body: (block) @span.block_body)
(loop_expression body: (block) @span.block_body)

(block) @span.block

(if_expression condition: (_) @span.condition)
(while_expression condition: (_) @span.condition)

(call_expression arguments: (arguments) @span.arguments) @span.call
(macro_invocation) @span.call

[
  (expression_statement)
  (let_declaration)
] @span.statement
(block (_expression) @span.statement .)
