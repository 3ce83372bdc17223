-- The replaced texts cannot be restored; nothing to undo.
SELECT 1;
